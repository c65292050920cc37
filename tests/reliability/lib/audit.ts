// Ground truth for "nothing lost, nothing duplicated": a trigger records every committed row change of the audited
// tables (in the same transaction as the change), and the changelog the WAL consumer wrote is checked against it.
import type pg from 'pg'

export const AUDITED = ['orders', 'order_details', 'products'] as const

/** Audit table + trigger (not registered for sync, so its own writes never reach the changelog). */
export const AUDIT_SQL = `
CREATE TABLE IF NOT EXISTS rel_audit (
  id bigserial PRIMARY KEY,
  tbl text NOT NULL,
  record_id text NOT NULL,
  kind text NOT NULL,
  owner text,
  parent text,
  deleted boolean NOT NULL,
  was_deleted boolean NOT NULL,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE OR REPLACE FUNCTION rel_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO rel_audit (tbl, record_id, kind, owner, parent, deleted, was_deleted)
    VALUES (TG_TABLE_NAME, OLD.id::text, 'DELETE', to_jsonb(OLD)->>'user_id', to_jsonb(OLD)->>'order_id', true,
            OLD.deleted_at IS NOT NULL);
    RETURN OLD;
  END IF;
  INSERT INTO rel_audit (tbl, record_id, kind, owner, parent, deleted, was_deleted)
  VALUES (TG_TABLE_NAME, NEW.id::text, TG_OP, to_jsonb(NEW)->>'user_id', to_jsonb(NEW)->>'order_id',
          NEW.deleted_at IS NOT NULL, CASE WHEN TG_OP = 'UPDATE' THEN OLD.deleted_at IS NOT NULL ELSE false END);
  RETURN NEW;
END $$;
${AUDITED.map(
  (t) => `DROP TRIGGER IF EXISTS rel_audit ON ${t};
CREATE TRIGGER rel_audit AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION rel_audit_fn();`,
).join('\n')}
`

export interface ChangelogCheck {
  /** (bucket, record) pairs compared. */
  records: number
  /** Changelog entries the audit says must exist. */
  expectedEntries: number
  actualEntries: number
  /** Entries missing from the changelog. */
  lost: number
  /** Entries present more often than the table changed. */
  duplicated: number
  /** Same length, different op sequence. */
  mismatched: number
  /** Records whose last changelog op disagrees with the row's current state (deleted ⇔ op 3). */
  stateMismatches: number
  examples: string[]
}

interface AuditRow {
  tbl: string
  record_id: string
  kind: string
  owner: string | null
  parent: string | null
  deleted: boolean
  was_deleted: boolean
}

/**
 * Expected op per row change, as the WAL consumer maps them (PROTOCOL.md §1.6, §3 J): insert → 1; update that leaves
 * the row soft-deleted → 3; update that revives a soft-deleted row → 1 (it re-enters its bucket); other updates → 2.
 * Buckets: orders → user:<owner>; order_details → its order's owner; products → global. Owners never change here.
 */
export async function checkChangelog(pool: pg.Pool): Promise<ChangelogCheck> {
  const audit = (
    await pool.query<AuditRow>(
      `SELECT tbl, record_id, kind, owner, parent, deleted, was_deleted FROM rel_audit ORDER BY id`,
    )
  ).rows
  const owners = new Map<string, string>()
  for (const a of audit) if (a.tbl === 'orders' && a.owner) owners.set(a.record_id, a.owner)
  const expected = new Map<string, number[]>()
  for (const a of audit) {
    const owner = a.tbl === 'orders' ? a.owner : a.tbl === 'order_details' ? owners.get(a.parent ?? '') : undefined
    const bucket = a.tbl === 'products' ? 'global' : `user:${owner}`
    const op = a.kind === 'INSERT' ? 1 : a.kind === 'DELETE' ? 3 : a.deleted ? 3 : a.was_deleted ? 1 : 2
    const k = `${bucket}|${a.tbl}|${a.record_id}`
    const list = expected.get(k)
    if (list) list.push(op)
    else expected.set(k, [op])
  }
  const log = (
    await pool.query<{ bucket_id: string; table_name: string; record_id: string; operation: number }>(
      `SELECT bucket_id, table_name, record_id, operation FROM sync_changelog WHERE table_name = ANY($1) ORDER BY seq`,
      [AUDITED],
    )
  ).rows
  const actual = new Map<string, number[]>()
  for (const e of log) {
    const k = `${e.bucket_id}|${e.table_name}|${e.record_id}`
    const list = actual.get(k)
    if (list) list.push(Number(e.operation))
    else actual.set(k, [Number(e.operation)])
  }
  const deletedNow = new Map<string, boolean>()
  for (const t of AUDITED) {
    const { rows } = await pool.query<{ id: string; d: boolean }>(
      `SELECT id::text AS id, deleted_at IS NOT NULL AS d FROM ${t}`,
    )
    for (const r of rows) deletedNow.set(`${t}|${r.id}`, r.d)
  }
  const out: ChangelogCheck = {
    records: 0,
    expectedEntries: 0,
    actualEntries: log.length,
    lost: 0,
    duplicated: 0,
    mismatched: 0,
    stateMismatches: 0,
    examples: [],
  }
  const keys = new Set([...expected.keys(), ...actual.keys()])
  for (const k of keys) {
    out.records++
    const e = expected.get(k) ?? []
    const a = actual.get(k) ?? []
    out.expectedEntries += e.length
    if (e.length > a.length) out.lost += e.length - a.length
    else if (a.length > e.length) out.duplicated += a.length - e.length
    else if (e.join() !== a.join()) out.mismatched++
    if (e.join() !== a.join() && out.examples.length < 10) out.examples.push(`${k}: expected [${e}] got [${a}]`)
    const [, tbl, id] = k.split('|')
    const deleted = deletedNow.get(`${tbl}|${id}`)
    const last = a.at(-1)
    if (deleted !== undefined && last !== undefined && (last === 3) !== deleted) {
      out.stateMismatches++
      if (out.examples.length < 10) out.examples.push(`${k}: last op ${last} but row deleted=${deleted}`)
    }
  }
  return out
}

/** Appends the check's problems to `violations`. */
export function changelogViolations(c: ChangelogCheck): string[] {
  const v: string[] = []
  if (c.lost) v.push(`changelog lost ${c.lost} entries`)
  if (c.duplicated) v.push(`changelog duplicated ${c.duplicated} entries`)
  if (c.mismatched) v.push(`changelog op sequences differ for ${c.mismatched} records`)
  if (c.stateMismatches) v.push(`changelog last op disagrees with table state for ${c.stateMismatches} records`)
  if (v.length) v.push(...c.examples)
  return v
}
