import { WIRE_ERRORS } from '@synchro/protocol'
import { AuthError, type Authenticator } from '../auth/auth.js'
import { isTransientError } from '../errors.js'
import { MAX_IDENTIFIER_LENGTH } from '../limits/limits.js'
import { type Logger, safeErrorFacts } from '../util/log.js'
import { clientErrorResponse, wireError } from './responses.js'

/**
 * The caller's user id (lower-cased), or the answer refusing it: the authenticator's own wire error, 401 for an
 * unusable identity, `unavailable()` when the authenticator hit a transient failure.
 */
export async function identify(
  request: Request,
  authenticate: Authenticator,
  logger: Logger,
  unavailable: () => Response,
): Promise<string | Response> {
  try {
    const userId = (await authenticate(request)).toLowerCase()
    if (userId === '') throw new AuthError(WIRE_ERRORS.missing_user_identity.message)
    // An identity PostgreSQL cannot store (NUL) or index (thousands of characters) is not a usable identity.
    if (userId.includes('\u0000') || userId.length > MAX_IDENTIFIER_LENGTH) {
      throw new AuthError(WIRE_ERRORS.invalid_token.message)
    }
    return userId
  } catch (err) {
    if (err instanceof AuthError) return clientErrorResponse(err) ?? wireError('invalid_token', err.message)
    if (isTransientError(err)) return unavailable()
    logger.error({ err: safeErrorFacts(err) }, 'authenticator failed')
    return wireError('invalid_token')
  }
}
