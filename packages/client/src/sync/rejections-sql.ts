/**
 * The durable rejections table (local-only, never synced): one row per write the server did not apply and will not
 * apply — terminal rejections, conflicts the server won, quarantined records. Rows stay until the app clears them.
 * `write_seq` is the queue entry's write counter when it was pushed; `superseded` is set once a later write of the
 * same record was applied (so `confirmed()` no longer reports the old rejection).
 */
export const REJECTIONS_SQL = `
CREATE TABLE IF NOT EXISTS _synchro_rejections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  operation TEXT NOT NULL,
  status TEXT NOT NULL,
  reason_code TEXT NOT NULL,
  message TEXT NOT NULL,
  resolution TEXT NOT NULL,
  server_data TEXT,
  client_data TEXT,
  write_seq INTEGER NOT NULL,
  superseded INTEGER NOT NULL DEFAULT 0,
  rejected_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _synchro_rejections_record ON _synchro_rejections (table_name, record_id);
`
