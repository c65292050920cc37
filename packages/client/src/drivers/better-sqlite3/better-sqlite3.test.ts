import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll } from 'vitest'
import { registerDriverTests } from '../../driver-conformance.js'
import { openBetterSqlite3 } from './index.js'

const dir = mkdtempSync(path.join(tmpdir(), 'synchro-bs3-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

registerDriverTests('better-sqlite3 (file)', () => openBetterSqlite3(path.join(dir, `db-${n++}.sqlite`)))
registerDriverTests('better-sqlite3 (memory)', () => openBetterSqlite3(':memory:', { journalMode: null }))
