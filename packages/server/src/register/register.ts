import type { RegisterRequest, RegisterResponse } from '@synchro/protocol'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import { BadRequestError, UpgradeRequiredError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { fitsText, MAX_FREE_TEXT_LENGTH, MAX_IDENTIFIER_LENGTH } from '../limits/limits.js'
import { inRequest } from '../request/open.js'
import { belowMinimum } from '../util/semver.js'
import { nowRfc3339, trimRfc3339 } from '../util/time.js'

/**
 * POST /sync/register (§3 B). Checks, in this order: fields PostgreSQL can store (400), schema pair — the empty
 * bootstrap pair included — (409), app version against the minimum (426), the per-user client cap for a new
 * client_id (403). The client row is inserted or reactivated by the statement that opens the transaction; any refusal
 * rolls it back.
 */
export async function register(
  ctx: EngineContext,
  userId: string,
  req: RegisterRequest,
  deadline?: RequestDeadline,
): Promise<RegisterResponse> {
  // PostgreSQL text cannot hold NUL and its indexes cannot hold kilobytes: refuse such input as bad (not 500).
  const fits =
    [userId, req.client_id, req.platform, req.app_version].every((v) => fitsText(v, MAX_IDENTIFIER_LENGTH)) &&
    fitsText(req.client_name, MAX_FREE_TEXT_LENGTH)
  if (!fits) throw new BadRequestError('invalid request body')
  const registration = {
    userId,
    clientId: req.client_id,
    clientName: req.client_name ?? null,
    platform: req.platform,
    appVersion: req.app_version,
    maxClientsPerUser: ctx.limits.maxClientsPerUser,
  }
  const belowMin = () =>
    ctx.minClientVersion !== undefined && req.app_version !== '' && belowMinimum(req.app_version, ctx.minClientVersion)
  const admit = () => {
    if (!belowMin()) return
    emitHook(ctx, 'onSchemaIncompatible', () => ({ userId, clientId: req.client_id, appVersion: req.app_version }))
    throw new UpgradeRequiredError()
  }
  const opts = { access: { register: registration }, schema: 'bootstrap', admit, deadline } as const
  return inRequest(ctx, userId, req, opts, async ({ contract, client }) => {
    const out: RegisterResponse = {
      id: client.id,
      server_time: nowRfc3339(),
      checkpoint: client.lastPullSeq ?? 0,
      schema_version: contract.version,
      schema_hash: contract.hash,
    }
    const lastSync = trimRfc3339(client.lastSyncAt)
    if (lastSync) out.last_sync_at = lastSync
    return out
  })
}
