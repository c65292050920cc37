import { WIRE_ERRORS } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { AuthError } from './auth/auth.js'
import {
  BadRequestError,
  ClientNotRegisteredError,
  ConfigurationError,
  SchemaContractError,
  SchemaMismatchError,
  StaleClientRejectedError,
  TooManyClientsError,
  UpgradeRequiredError,
  wireCodeOf,
} from './errors.js'
import { DeadlineExceededError } from './limits/deadline.js'

describe('errors carry their wire code', () => {
  it('every client error maps to its WIRE_ERRORS entry (status and message)', () => {
    const cases: [Error, keyof typeof WIRE_ERRORS, number][] = [
      [new SchemaMismatchError(3, 'h'), 'schema_mismatch', 409],
      [new ClientNotRegisteredError(), 'client_not_registered', 404],
      [new UpgradeRequiredError(), 'upgrade_required', 426],
      [new StaleClientRejectedError(), 'stale_client_rejected', 403],
      [new TooManyClientsError(), 'too_many_clients', 403],
      [new BadRequestError('invalid request body'), 'invalid_request_body', 400],
      [new BadRequestError('too many changes', 'too_many_changes'), 'too_many_changes', 400],
      [new AuthError(WIRE_ERRORS.malformed_authorization.message), 'malformed_authorization', 401],
      [new AuthError(WIRE_ERRORS.token_missing_user_claim.message), 'token_missing_user_claim', 401],
    ]
    for (const [err, code, status] of cases) {
      expect(wireCodeOf(err)).toBe(code)
      expect(WIRE_ERRORS[code].status).toBe(status)
      expect(err.message).toBe(WIRE_ERRORS[code].message)
    }
  })

  it('a specific message keeps its wire code; an authenticator message of its own is an invalid token', () => {
    const cursor = new BadRequestError('invalid cursor')
    expect([wireCodeOf(cursor), cursor.message]).toEqual(['invalid_request_body', 'invalid cursor'])
    const missing = new BadRequestError('client_id is required', 'missing_key')
    expect(WIRE_ERRORS[wireCodeOf(missing) ?? 'not_found'].status).toBe(400)
    const custom = new AuthError('account locked')
    expect([wireCodeOf(custom), custom.message]).toEqual(['invalid_token', 'account locked'])
  })

  it('server-side failures carry no wire code (answered 500 or, when transient, 503)', () => {
    for (const err of [
      new SchemaContractError('x'),
      new ConfigurationError('x'),
      new DeadlineExceededError(),
      new Error('client_not_registered'),
      Object.assign(new Error('x'), { code: 'client_not_registered' }),
    ]) {
      expect(wireCodeOf(err)).toBeUndefined()
    }
  })
})
