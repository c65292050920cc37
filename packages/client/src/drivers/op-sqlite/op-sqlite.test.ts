import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openOpSqlite } from '../../../test/op-sqlite.js'
import { registerDriverTests } from '../../driver-conformance.js'
import { splitStatements } from '../statements.js'

const dir = mkdtempSync(path.join(tmpdir(), 'synchro-op-sqlite-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

registerDriverTests('op-sqlite (Node build)', () => openOpSqlite(path.join(dir, `db-${n++}.sqlite`)))

describe('op-sqlite driver specifics', () => {
  it('binds bigints beyond 2^53 exactly into INTEGER columns', async () => {
    const d = await openOpSqlite(path.join(dir, `db-${n++}.sqlite`))
    await d.exec('CREATE TABLE t (v INTEGER)')
    await d.run('INSERT INTO t VALUES (?), (?)', [-(2n ** 63n), 2n ** 63n - 1n])
    expect(await d.all('SELECT CAST(v AS TEXT) AS v, typeof(v) AS t FROM t ORDER BY v')).toEqual([
      { v: '-9223372036854775808', t: 'integer' },
      { v: '9223372036854775807', t: 'integer' },
    ])
    await d.close()
  })
})

describe('splitStatements', () => {
  it('splits at semicolons outside strings, comments and trigger bodies', () => {
    const script = `
      CREATE TABLE "a;b" (v TEXT DEFAULT ';'); -- a comment; with a semicolon
      /* block; comment */ INSERT INTO [a;b] VALUES ('it''s; fine');
      CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN
        UPDATE c SET n = CASE WHEN n > 0 THEN n + 1 ELSE 1 END;
        SELECT RAISE(IGNORE);
      END;
      SELECT 1`
    const parts = splitStatements(script)
    expect(parts).toHaveLength(4)
    expect(parts[0]).toBe(`CREATE TABLE "a;b" (v TEXT DEFAULT ';')`)
    expect(parts[1]).toContain(`INSERT INTO [a;b] VALUES ('it''s; fine')`)
    expect(parts[2]).toMatch(/^CREATE TEMP TRIGGER x[\s\S]*RAISE\(IGNORE\);\s*END$/)
    expect(parts[3]).toBe('SELECT 1')
  })
})
