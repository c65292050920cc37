import { HEADERS, WIRE_ERRORS } from '@synchro/protocol'
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose'
import { SynchroError } from '../errors.js'

/** The wire codes of a failed authentication (all HTTP 401). */
export type AuthErrorCode =
  | 'missing_user_identity'
  | 'malformed_authorization'
  | 'invalid_token'
  | 'token_missing_user_claim'

/**
 * Authentication failed: answered 401 with `message` as the wire error. `code` defaults to the one whose message
 * `message` is (`invalid_token` for any other message).
 */
export class AuthError extends SynchroError {
  constructor(message: string, code: AuthErrorCode = authCodeOf(message)) {
    super(code, message)
  }
}

const AUTH_CODES: readonly AuthErrorCode[] = [
  'missing_user_identity',
  'malformed_authorization',
  'invalid_token',
  'token_missing_user_claim',
]

function authCodeOf(message: string): AuthErrorCode {
  return AUTH_CODES.find((c) => WIRE_ERRORS[c].message === message) ?? 'invalid_token'
}

/**
 * Resolves the caller's user id from a request, or throws AuthError (401). Bring your own by implementing this.
 * The handler lower-cases the id (UUID normalisation, §1.2).
 */
export type Authenticator = (request: Request) => Promise<string> | string

/** Dev mode: identity from the `X-User-ID` header (PROTOCOL.md §1.2). */
export function headerAuth(header: string = HEADERS.userId): Authenticator {
  return async (request) => {
    const id = request.headers.get(header)
    if (!id) throw new AuthError(WIRE_ERRORS.missing_user_identity.message)
    return id
  }
}

export interface JwtAuthOptions {
  /** Shared secret: accepts HS256/HS384/HS512 only. */
  secret?: string
  /** JWKS endpoint: accepts RS256/384/512 and ES256/384/512 only. */
  jwksUrl?: string
  /** Claim holding the user id (default `sub`). */
  userClaim?: string
  /** Accepted audience / issuer, when set. */
  audience?: string
  issuer?: string
}

const HS = ['HS256', 'HS384', 'HS512']
const ASYM = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512']

/** Bearer-JWT authentication with `jose` (no leeway; `exp`/`nbf` enforced; a token without `exp` is accepted). */
export function jwtAuth(opts: JwtAuthOptions): Authenticator {
  // A blank secret (an unset variable templated in) must fail here, never verify tokens signed with "".
  if (opts.secret !== undefined && opts.secret.trim() === '') {
    throw new SynchroError('configuration', 'jwtAuth: secret is empty')
  }
  if (opts.jwksUrl !== undefined && opts.jwksUrl.trim() === '') {
    throw new SynchroError('configuration', 'jwtAuth: jwksUrl is empty')
  }
  if (!opts.secret && !opts.jwksUrl) throw new SynchroError('configuration', 'jwtAuth: secret or jwksUrl is required')
  const claim = opts.userClaim || 'sub'
  const key = opts.secret ? new TextEncoder().encode(opts.secret) : undefined
  const jwks = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined
  const algorithms = key ? HS : ASYM
  // Verified tokens are cached briefly (keyed by the token, never past `exp`): HS verification dominates the hot path.
  const cache = new Map<string, { sub: string; until: number }>()
  return async (request) => {
    const header = request.headers.get(HEADERS.authorization)
    if (!header?.startsWith('Bearer ')) throw new AuthError(WIRE_ERRORS.malformed_authorization.message)
    const token = header.slice('Bearer '.length)
    const now = Date.now()
    const hit = cache.get(token)
    if (hit && hit.until > now) return hit.sub
    let payload: JWTPayload
    try {
      const verifyOpts = { algorithms, audience: opts.audience, issuer: opts.issuer, clockTolerance: 0 }
      payload = key
        ? (await jwtVerify(token, key, verifyOpts)).payload
        : (await jwtVerify(token, jwks as ReturnType<typeof createRemoteJWKSet>, verifyOpts)).payload
    } catch {
      throw new AuthError(WIRE_ERRORS.invalid_token.message)
    }
    const sub = payload[claim]
    if (typeof sub !== 'string' || sub === '') throw new AuthError(WIRE_ERRORS.token_missing_user_claim.message)
    if (cache.size > 10_000) cache.clear()
    const until = Math.min(
      now + 60_000,
      typeof payload.exp === 'number' ? payload.exp * 1000 : Number.POSITIVE_INFINITY,
    )
    const nbfOk = typeof payload.nbf !== 'number'
    if (nbfOk) cache.set(token, { sub, until })
    return sub
  }
}
