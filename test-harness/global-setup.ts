import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startEmbeddedPostgres } from 'synchrod/embedded'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string
  }
}

/**
 * One PostgreSQL for the whole run: `SYNCHRO_TEST_DATABASE_URL` when set (CI points it at the machine's
 * PostgreSQL), otherwise an embedded PostgreSQL 17 with wal_level=logical in a temp folder.
 */
export default async function setup(project: TestProject) {
  const given = process.env.SYNCHRO_TEST_DATABASE_URL
  if (given) {
    project.provide('pgUrl', given)
    return
  }
  const base = await mkdtemp(path.join(tmpdir(), 'synchro-test-pg-'))
  const { chmod } = await import('node:fs/promises')
  await chmod(base, 0o777)
  const pg = await startEmbeddedPostgres({ dataDir: path.join(base, 'data'), persistent: false })
  project.provide('pgUrl', pg.url)
  process.env.SYNCHRO_TEST_DATABASE_URL = pg.url
  return async () => {
    await pg.stop()
    await rm(base, { recursive: true, force: true })
  }
}
