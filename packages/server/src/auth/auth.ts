import { HEADERS, WIRE_ERRORS } from '@synchro/protocol'
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose'
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
  const jwks = opts.jwksUrl ? remoteKeys(opts.jwksUrl) : undefined
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
        : (await jwtVerify(token, jwks as JWTVerifyGetKey, verifyOpts)).payload
    } catch (err) {
      if (err instanceof KeySetUnavailableError) throw err
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

/**
 * The JWKS endpoint could not be read (unreachable, timed out, not 200, not a key set) and no key set was read before:
 * the server's problem, not the token's. The handler answers 503 + Retry-After (`isTransientError`), never 401, which
 * would tell the client its credentials are bad.
 */
export class KeySetUnavailableError extends SynchroError {
  constructor(cause: unknown) {
    super('key_set_unavailable', 'JWKS endpoint unavailable', { cause })
  }
}

/**
 * The keys of a JWKS endpoint (jose's remote set: cached, refetched when stale or on an unknown `kid`). When a refetch
 * fails, the last key set read still verifies tokens — an identity provider's outage does not sign every client out —
 * and without one the failure is KeySetUnavailableError. A token's own problems (no matching key) stay 401.
 */
function remoteKeys(url: string): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url))
  // The last key set read, as a local set: built at the first failed refetch, dropped at the next success.
  let fallback: JWTVerifyGetKey | undefined
  return async (header, token) => {
    try {
      const key = await remote(header, token)
      fallback = undefined
      return key
    } catch (err) {
      if (!fetchFailed(err)) throw err
      const keys = remote.jwks() // the set of the last successful fetch, if any
      if (!keys) throw new KeySetUnavailableError(err)
      fallback ??= createLocalJWKSet(keys)
      return fallback(header, token)
    }
  }
}

/** Whether jose failed to read the key set (rather than to find a key in it). */
function fetchFailed(err: unknown): boolean {
  if (!(err instanceof errors.JOSEError)) return true // fetch's own errors (connection refused, DNS)
  // The bare JOSEError: a status other than 200, or a body that is not JSON.
  return err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === 'ERR_JOSE_GENERIC'
}
