/**
 * The changelog's tables are named in SQL only by changelog/ (and the migrations that create them): everything else
 * goes through its functions, so the table's meaning has one home. Scans the source of every package.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const PACKAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

/** Where the tables may appear in SQL (paths relative to packages/). */
const OWNERS = ['server/src/changelog/', 'server/src/migrations/']

/** Known exceptions, each with its way out (none left). */
const PENDING = new Set<string>()

/** A table name used as SQL: after a keyword that takes a table, or as a quoted literal (regclass, sequences). */
const SQL_USE =
  /\b(?:FROM|INTO|UPDATE|JOIN|COPY|TABLE|TRUNCATE)\s+(sync_changelog|sync_compaction_state)\b|'(sync_changelog|sync_compaction_state)'/

function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'dist') out.push(...sources(p))
    } else if (/\.tsx?$/.test(e.name) && !/\.test\.tsx?$/.test(e.name)) out.push(p)
  }
  return out
}

describe('changelog ownership', () => {
  it('no package source outside changelog/ and migrations/ names sync_changelog or sync_compaction_state in SQL', () => {
    const offenders: string[] = []
    for (const pkg of readdirSync(PACKAGES)) {
      let files: string[]
      try {
        files = sources(path.join(PACKAGES, pkg, 'src'))
      } catch {
        continue
      }
      for (const file of files) {
        const rel = path.relative(PACKAGES, file).split(path.sep).join('/')
        if (OWNERS.some((o) => rel.startsWith(o)) || PENDING.has(rel)) continue
        const m = readFileSync(file, 'utf8').match(SQL_USE)
        if (m) offenders.push(`${rel}: ${m[0]}`)
      }
    }
    expect(offenders).toEqual([])
  })

  it('the pattern catches the forms the code used before', () => {
    for (const sql of [
      'SELECT max(seq) FROM sync_changelog',
      "to_regclass('sync_changelog')",
      'INSERT INTO sync_compaction_state AS s',
      'COPY sync_changelog (bucket_id) FROM STDIN',
    ]) {
      expect(sql).toMatch(SQL_USE)
    }
    expect('Rows in sync_changelog (estimate above 100k).').not.toMatch(SQL_USE)
  })
})
