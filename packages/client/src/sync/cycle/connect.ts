import { migrateToSchema } from '../../schema/migrate.js'
import { toClientSchema } from '../../schema/synced-table.js'
import { getMeta, setMeta } from '../../store/database.js'
import { addUnreceived } from '../unreceived.js'
import type { CycleContext } from './context.js'

/** Schema → additive migration → register; the session's first step and the answer to a 409. */
export async function connect(ctx: CycleContext): Promise<void> {
  const res = await ctx.transport.getSchema()
  const schema = toClientSchema(res)
  await ctx.db.transaction(async (tx) => {
    const wasComplete = (await getMeta(tx, 'snapshot_complete')) === '1'
    const result = await migrateToSchema(tx, schema)
    // Server data no changelog entry will ever bring: the rows of a table new to this database or synced again
    // (nothing was logged while it was not), the values of columns added to existing rows (ADD COLUMN logs nothing)
    // or retyped (ALTER COLUMN … TYPE rewrites every row, logging nothing; a USING clause may change the values).
    // Re-snapshot (which keeps queued changes, Decision 21).
    const unseen =
      result.createdTables.length +
      result.adoptedTables.length +
      result.addedColumns.length +
      result.retypedColumns.length
    if (wasComplete && unseen > 0) await setMeta(tx, 'snapshot_complete', '0')
    if (wasComplete) await addUnreceived(tx, result.addedColumns)
  }, 'sync')
  ctx.db.schemaChanged()
  ctx.schema = schema
  const reg = await ctx.transport.register({
    client_id: ctx.cfg.clientID,
    client_name: null,
    platform: ctx.cfg.platform,
    app_version: ctx.cfg.appVersion,
    schema_version: schema.version,
    schema_hash: schema.hash,
  })
  await ctx.db.run((ex) => setMeta(ex, 'client_server_id', reg.id), 'sync')
  ctx.connected = true
}
