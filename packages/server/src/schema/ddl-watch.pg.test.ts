import { createAppRolePool, createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'
import { Registry } from '../registry/registry.js'
import {
  type DdlWatchInstall,
  ddlDropTrigger,
  ddlWatchTrigger,
  findDdlWatch,
  foldDdlEpoch,
  installDdlWatch,
} from './ddl-watch.js'

const TABLE = `CREATE TABLE notes (
  id uuid PRIMARY KEY, user_id text NOT NULL, body text,
  updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)`

let db: TestDatabase
let engine: Engine
beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(TABLE)
  engine = await createEngine({
    pool: db.pool,
    registry: new Registry().register({ tableName: 'notes', bucketByColumn: 'user_id' }),
  })
})
afterAll(async () => {
  await engine?.close()
  await db?.drop()
})

/** `installDdlWatch` as a migration runs it: in a transaction of its own, committed. */
async function installInTransaction(pool: pg.Pool): Promise<DdlWatchInstall> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    const r = await installDdlWatch(c)
    await c.query('COMMIT')
    return r
  } finally {
    c.release()
  }
}

async function token(): Promise<string | null> {
  const sql = `SELECT ${engine.ctx.contracts.fingerprintSql('$1')} AS t`
  const { rows } = await db.pool.query<{ t: string | null }>(sql, [engine.ctx.contracts.fingerprintParam()])
  return rows[0]?.t ?? null
}

describe('DDL watch (Decision 12: DDL noticed without reading the catalogs per request)', () => {
  it('migrations install it and the engine trusts it: requests read the epoch, not the catalog fingerprint', async () => {
    expect(await findDdlWatch(db.pool)).toBeDefined()
    expect(engine.ctx.contracts.watchingDdl).toBe(true)
    expect(await token()).toMatch(/^ddl \d+\/\d+\/\d+\/\d+\/\d+$/)
  })

  it('the epoch moves with committed DDL only: not with a rollback, not with temporary tables alone', async () => {
    const before = await token()
    expect(await token()).toBe(before)
    await db.pool.query('BEGIN; ALTER TABLE notes ADD COLUMN tmp int; ROLLBACK')
    expect(await token()).toBe(before)
    await db.pool.query('BEGIN; CREATE TEMP TABLE scratch (a int); COMMIT')
    expect(await token()).toBe(before)
    await db.pool.query('CREATE TABLE unrelated (a int)')
    const after = await token()
    expect(after).not.toBe(before)
    // DDL elsewhere: a new epoch, the same contract (checked once against the catalog, not rebuilt). Statements take
    // the token as a parameter, so nothing cached per contract depends on the epoch.
    const contract = await engine.ctx.contracts.get()
    expect(await engine.ctx.contracts.get()).toBe(contract)
    await db.pool.query('DROP TABLE unrelated')
    const next = await engine.ctx.contracts.get()
    expect(next).toBe(contract)
    expect(next).toEqual(contract)
    expect(await engine.ctx.contracts.get()).toBe(next)
  })

  it('dropping temporary objects leaves the epoch; dropping a permanent table moves it, once', async () => {
    const sum = async () =>
      (await db.pool.query<{ s: string }>('SELECT sum(n)::text AS s FROM sync_ddl_epoch')).rows[0]?.s
    const c = await db.pool.connect() // temporary objects live in one session
    try {
      const before = await token()
      await c.query(`CREATE TEMP TABLE scratch2 (a int PRIMARY KEY, b serial); CREATE INDEX scratch2_b ON scratch2 (b);
        CREATE TEMP VIEW scratch2_v AS SELECT a FROM scratch2; CREATE TEMP SEQUENCE scratch2_s`)
      await c.query('DROP VIEW scratch2_v; DROP INDEX scratch2_b; DROP SEQUENCE scratch2_s; DROP TABLE scratch2')
      expect(await token()).toBe(before)
      await c.query('CREATE TABLE perm_drop (a int); CREATE TEMP TABLE temp_drop (a int)')
      const created = await token()
      expect(created).not.toBe(before)
      const n = BigInt((await sum()) ?? 0)
      await c.query('DROP TABLE temp_drop, perm_drop') // one of them permanent: counts
      expect(await token()).not.toBe(created)
      expect(BigInt((await sum()) ?? 0)).toBe(n + 1n)
    } finally {
      c.release()
    }
  })

  it('while the sql_drop trigger is missing or not firing always, every DROP counts (temporary ones too)', async () => {
    const drop = ddlDropTrigger('public')
    const tempDropMoves = async () => {
      const c = await db.pool.connect()
      try {
        await c.query('CREATE TEMP TABLE scratch3 (a int)')
        const before = await token()
        await c.query('DROP TABLE scratch3')
        return (await token()) !== before
      } finally {
        c.release()
      }
    }
    expect(await tempDropMoves()).toBe(false)
    await db.pool.query(`ALTER EVENT TRIGGER ${drop} ENABLE`) // origin sessions only: not relied on
    try {
      expect(await tempDropMoves()).toBe(true)
    } finally {
      await db.pool.query(`ALTER EVENT TRIGGER ${drop} ENABLE ALWAYS`)
    }
    // An install from before the sql_drop trigger: the next migration adds it, and temporary drops stop counting.
    await db.pool.query(`DROP EVENT TRIGGER ${drop}`)
    expect(await tempDropMoves()).toBe(true)
    expect((await installInTransaction(db.pool)).installed).toBe(true)
    expect(await tempDropMoves()).toBe(false)
    expect(await findDdlWatch(db.pool)).toMatchObject({ trigger: ddlWatchTrigger('public') })
  })

  it('DDL on a registered table gives a new contract at once', async () => {
    const before = await engine.ctx.contracts.get()
    await db.pool.query('ALTER TABLE notes ADD COLUMN color text')
    const after = await engine.ctx.contracts.get()
    expect(after.hash).not.toBe(before.hash)
    expect(after.columns.get('notes')?.map((c) => c.name)).toContain('color')
    await db.pool.query('ALTER TABLE notes DROP COLUMN color')
    expect((await engine.ctx.contracts.get()).hash).toBe(before.hash)
  })

  it('counters of exited backends fold into one row: the sum stays, tokens never repeat, a locked row is skipped', async () => {
    const sum = async () =>
      (
        await db.pool.query<{ s: string; c: number }>(
          'SELECT sum(n)::text AS s, count(*)::int AS c FROM sync_ddl_epoch',
        )
      ).rows[0]
    const exited = async (pid: number | undefined) => {
      for (let i = 0; i < 200; i++) {
        const r = await db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])
        if (r.rowCount === 0) return
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      throw new Error(`backend ${pid} did not exit`)
    }
    const pidOf = async (c: pg.Client) => (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p
    // Three sessions run DDL and exit: three rows of pids no backend has any more.
    for (let i = 0; i < 3; i++) {
      const c = new pg.Client({ connectionString: db.url })
      await c.connect()
      await c.query(`CREATE TABLE gone_${i} (a int); DROP TABLE gone_${i}`)
      const pid = await pidOf(c)
      await c.end()
      await exited(pid)
    }
    // A session still alive keeps its row.
    const alive = new pg.Client({ connectionString: db.url })
    await alive.connect()
    await alive.query('CREATE TABLE alive_t (a int)')
    const before = await sum()
    const tokenBefore = await token()
    expect(await foldDdlEpoch(db.pool)).toBeGreaterThanOrEqual(3)
    const after = await sum()
    expect(after?.s).toBe(before?.s)
    expect(after?.c).toBeLessThanOrEqual((before?.c ?? 0) - 2)
    expect(await token()).not.toBe(tokenBefore)
    const alivePid = await pidOf(alive)
    const kept = await db.pool.query('SELECT 1 FROM sync_ddl_epoch WHERE pid = $1', [alivePid])
    expect(kept.rowCount).toBe(1)
    // DDL after the fold still moves the sum; a second fold has nothing left of exited backends but keeps it.
    await alive.query('DROP TABLE alive_t')
    await alive.end()
    await exited(alivePid)
    const moved = await sum()
    expect(BigInt(moved?.s ?? 0)).toBe(BigInt(after?.s ?? 0) + 1n)
    // A row locked by an open transaction is skipped, not waited for.
    const holder = await db.pool.connect()
    try {
      await holder.query('BEGIN')
      await holder.query('SELECT * FROM sync_ddl_epoch WHERE pid = $1 FOR UPDATE', [alivePid])
      expect(await foldDdlEpoch(db.pool)).toBe(0)
      expect((await sum())?.s).toBe(moved?.s)
    } finally {
      await holder.query('ROLLBACK')
      holder.release()
    }
    expect(await foldDdlEpoch(db.pool)).toBe(1)
    expect((await sum())?.s).toBe(moved?.s)
    expect(await engine.ctx.contracts.get()).toBeDefined()
  })

  it('concurrent folds and DDL sessions: the sum counts every DDL exactly once; one base row', async () => {
    const sum = async () =>
      BigInt(
        (await db.pool.query<{ s: string }>('SELECT coalesce(sum(n), 0)::text AS s FROM sync_ddl_epoch')).rows[0]?.s ??
          0,
      )
    const ddlSession = async (i: number) => {
      const c = new pg.Client({ connectionString: db.url })
      await c.connect()
      await c.query(`CREATE TABLE fold_${i} (a int)`)
      await c.query(`DROP TABLE fold_${i}`)
      await c.end()
    }
    const start = await sum()
    const folds = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: db.url, max: 1 }))
    try {
      let folded = 0
      const sessions = 24
      const work: Promise<unknown>[] = []
      for (let i = 0; i < sessions; i++) {
        work.push(ddlSession(i))
        if (i % 3 === 0) for (const p of folds) work.push(foldDdlEpoch(p).then((n) => (folded += n)))
      }
      await Promise.all(work)
      await new Promise((r) => setTimeout(r, 300)) // sessions exit
      for (const p of folds) folded += await foldDdlEpoch(p)
      expect(await sum()).toBe(start + BigInt(sessions * 2))
      const rows = await db.pool.query<{ pid: number }>('SELECT pid FROM sync_ddl_epoch')
      expect(rows.rows.filter((r) => r.pid === 0)).toHaveLength(1)
      expect(folded).toBeGreaterThan(0) // not one per session: a session may reuse an exited one's pid (and row)
    } finally {
      await Promise.all(folds.map((p) => p.end()))
    }
  })

  it('concurrent DDL transactions do not wait on one another (one counter row per backend)', async () => {
    const a = await db.pool.connect()
    const b = await db.pool.connect()
    try {
      await a.query('BEGIN')
      await a.query('CREATE TABLE held_a (x int)')
      // With one shared counter row, b's bump would wait for a's COMMIT and hit the lock timeout.
      await b.query('BEGIN')
      await b.query(`SET LOCAL lock_timeout = '2s'`)
      await b.query('CREATE TABLE held_b (x int)')
      await b.query('COMMIT')
      await a.query('COMMIT')
    } finally {
      a.release()
      b.release()
    }
    await db.pool.query('DROP TABLE held_a, held_b')
  })

  it('a disabled trigger makes the epoch NULL, and DDL is still noticed (from the catalogs)', async () => {
    const trigger = ddlWatchTrigger('public')
    const before = await engine.ctx.contracts.get()
    await db.pool.query(`ALTER EVENT TRIGGER ${trigger} ENABLE`) // fires only for origin sessions: not trusted
    try {
      expect(await token()).toBeNull()
      await db.pool.query(`ALTER EVENT TRIGGER ${trigger} DISABLE`)
      await db.pool.query('ALTER TABLE notes ADD COLUMN shade text') // no bump: the trigger is off
      expect(await token()).toBeNull()
      const during = await engine.ctx.contracts.get()
      expect(during.hash).not.toBe(before.hash)
      expect(engine.ctx.contracts.cachedFor(null)).toBeUndefined()
      expect(await findDdlWatch(db.pool)).toBeUndefined()
    } finally {
      await db.pool.query(`ALTER EVENT TRIGGER ${trigger} ENABLE ALWAYS`)
      await db.pool.query('ALTER TABLE notes DROP COLUMN IF EXISTS shade')
    }
    expect((await engine.ctx.contracts.get()).hash).toBe(before.hash)
  })

  it('without the privilege: not installed, the reason and the SQL to run are reported, the migration goes on', async () => {
    const other = await createTestDatabase()
    try {
      const app = await createAppRolePool(other)
      const c = await app.connect()
      try {
        await c.query('BEGIN')
        const r = await installDdlWatch(c)
        expect(r.installed).toBe(false)
        if (r.installed) return
        expect(r.reason).toMatch(/permission denied/)
        expect(r.sql.join('\n')).toContain('CREATE EVENT TRIGGER "sync_ddl_epoch" ON ddl_command_end')
        await c.query('SELECT 1') // the transaction is still usable (savepoint)
        await c.query('COMMIT')
      } finally {
        c.release()
        await app.end()
      }
      expect(await findDdlWatch(other.pool)).toBeUndefined()
    } finally {
      await other.drop()
    }
  })

  it('DDL while the trigger is off is noticed, even when no request saw it off (ENABLE/DISABLE in one transaction)', async () => {
    const trigger = ddlWatchTrigger('public')
    const before = await engine.ctx.contracts.get()
    await db.pool.query(`BEGIN; ALTER EVENT TRIGGER ${trigger} DISABLE; ALTER TABLE notes ADD COLUMN hue text;
      ALTER EVENT TRIGGER ${trigger} ENABLE ALWAYS; COMMIT`)
    const after = await engine.ctx.contracts.get()
    expect(after.columns.get('notes')?.map((c) => c.name)).toContain('hue')
    await db.pool.query('ALTER TABLE notes DROP COLUMN hue')
    expect((await engine.ctx.contracts.get()).hash).toBe(before.hash)
  })

  it('TRUNCATE of the counters (no event trigger fires) followed by DDL is noticed', async () => {
    await db.pool.query('CREATE TABLE bump_once (a int)') // at least one counter row with n ≥ 1
    const before = await engine.ctx.contracts.get()
    await db.pool.query('TRUNCATE sync_ddl_epoch')
    await db.pool.query('ALTER TABLE notes ADD COLUMN tint text') // the sum can be what it was before the TRUNCATE
    expect((await engine.ctx.contracts.get()).columns.get('notes')?.map((c) => c.name)).toContain('tint')
    await db.pool.query('ALTER TABLE notes DROP COLUMN tint; DROP TABLE bump_once')
    expect((await engine.ctx.contracts.get()).hash).toBe(before.hash)
  })

  it('with the trigger off, a request reads the catalog fingerprint itself: DDL just made answers 409 to the old pair', async () => {
    const trigger = ddlWatchTrigger('public')
    const user = 'null-token-user'
    const reg = await engine.register(user, {
      client_id: 'c1',
      platform: 'test',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    await db.pool.query(`ALTER EVENT TRIGGER ${trigger} DISABLE`)
    try {
      await db.pool.query('ALTER TABLE notes ADD COLUMN mark text')
      // The old schema pair is refused at once: the request read the catalog fingerprint, not a stale cache.
      const stale = engine.snapshot(user, {
        client_id: 'c1',
        schema_version: reg.schema_version,
        schema_hash: reg.schema_hash,
      })
      await expect(stale).rejects.toMatchObject({ name: 'SchemaMismatchError' })
    } finally {
      await db.pool.query(`ALTER EVENT TRIGGER ${trigger} ENABLE ALWAYS`)
      await db.pool.query('ALTER TABLE notes DROP COLUMN IF EXISTS mark')
    }
  })

  it('the trigger function runs as the counter table’s owner, not as the superuser who installed it', async () => {
    const { rows } = await db.pool.query<{ fn: string; tbl: string }>(
      `SELECT pg_get_userbyid(p.proowner) AS fn, pg_get_userbyid(c.relowner) AS tbl
         FROM pg_proc p, pg_class c WHERE p.proname = 'sync_ddl_epoch_bump' AND c.oid = 'sync_ddl_epoch'::regclass`,
    )
    expect(rows[0]?.fn).toBe(rows[0]?.tbl)
    const other = await createTestDatabase()
    try {
      const app = await createAppRolePool(other)
      const owner = new URL(other.url)
      await other.pool.query(`GRANT CREATE ON SCHEMA public TO "${`app_${other.name}`.slice(0, 63)}"`)
      await app.query('CREATE TABLE sync_ddl_epoch (pid integer PRIMARY KEY, n bigint NOT NULL)')
      await app.end()
      expect((await installInTransaction(other.pool)).installed).toBe(true)
      const r = await other.pool.query<{ fn: string }>(
        `SELECT pg_get_userbyid(proowner) AS fn FROM pg_proc WHERE proname = 'sync_ddl_epoch_bump'`,
      )
      expect(r.rows[0]?.fn).toBe(`app_${other.name}`.slice(0, 63))
      expect(r.rows[0]?.fn).not.toBe(owner.username)
      await other.pool.query('CREATE TABLE counted (a int)') // the DDL of a superuser still bumps the counter
      const n = await other.pool.query<{ n: string }>('SELECT sum(n)::text AS n FROM sync_ddl_epoch')
      expect(Number(n.rows[0]?.n)).toBeGreaterThan(0)
    } finally {
      await other.drop()
    }
  })

  it('a trigger bumping another schema’s counters is not trusted', async () => {
    await db.pool.query(`CREATE SCHEMA elsewhere;
      CREATE TABLE elsewhere.sync_ddl_epoch (pid integer PRIMARY KEY, n bigint NOT NULL)`)
    const c = await db.pool.connect()
    try {
      await c.query('BEGIN')
      await c.query('SET LOCAL search_path = elsewhere')
      expect((await installDdlWatch(c)).installed).toBe(true)
      expect(await findDdlWatch(c)).toMatchObject({ trigger: ddlWatchTrigger('elsewhere') })
      await c.query(`DROP EVENT TRIGGER ${ddlWatchTrigger('elsewhere')}`)
      expect(await findDdlWatch(c)).toBeUndefined() // public's trigger bumps public's counters, not these
      await c.query('ROLLBACK')
    } finally {
      c.release()
    }
  })
})
