/**
 * A client's own push answer carries the columns the server set (defaults, trigger-written values): the client stores
 * them when the push completes, without waiting for a poke and a pull. Real PostgreSQL, the real server over HTTP and
 * a SynchroClient over SQLite; every pull is refused by the network, so nothing can arrive any other way.
 */
import { randomUUID } from 'node:crypto'
import { Registry } from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, makeClient, startSynced } from '../test/helpers.js'
import { type SyncStack, startSyncStack } from '../test/sync-stack.js'
import type { SynchroClient } from './client.js'
import type { FetchLike } from './sync/transport.js'

const DDL = `
CREATE TABLE notes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  title text NOT NULL DEFAULT '',
  slug text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE FUNCTION notes_slug() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.slug := lower(replace(NEW.title, ' ', '-'));
  RETURN NEW;
END $$;
CREATE TRIGGER notes_slug BEFORE INSERT OR UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION notes_slug();
`

let db: TestDatabase
let stack: SyncStack
const clients: SynchroClient[] = []

beforeAll(async () => {
  db = await createTestDatabase('synchro_push_echo')
  await db.pool.query(DDL)
  const registry = new Registry()
  registry.register({ tableName: 'notes', ownerColumn: 'user_id' })
  stack = await startSyncStack(db, registry, 'push_echo')
}, 120_000)

afterAll(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await stack?.close()
  await db?.drop()
  cleanupTempDirs()
}, 60_000)

interface LocalNote {
  title: string
  slug: string | null
  created_at: string | null
  updated_at: string
}

describe('push answer carries server-set columns', () => {
  it('a trigger-written column and a default arrive with the push answer; no pull is needed', async () => {
    const user = randomUUID()
    let pullsBlocked = false
    let pullsRefused = 0
    const fetchImpl: FetchLike = (input, init) => {
      if (pullsBlocked && String(input).includes('/sync/pull')) {
        pullsRefused++
        return Promise.reject(new TypeError('fetch failed (pull refused by the test)'))
      }
      return fetch(input, init)
    }
    const c = makeClient(stack.url, {
      userID: user,
      clientID: `c-${randomUUID()}`,
      fetch: fetchImpl,
      maxRetryAttempts: 1,
    })
    clients.push(c)
    await startSynced(c)
    pullsBlocked = true

    const id = randomUUID()
    await c.execute('INSERT INTO notes (id, user_id, title) VALUES (?, ?, ?)', [id, user, 'Hello Big World'])
    await c.syncNow().catch(() => {}) // the push succeeds, the pull is refused
    expect(pullsRefused).toBeGreaterThan(0)
    expect(await c.pendingChangeCount()).toBe(0)

    const server = await db.pool.query<{ slug: string; created_at: string; u: string }>(
      `SELECT slug, to_jsonb(n)->>'created_at' AS created_at, to_jsonb(n)->>'updated_at' AS u FROM notes n WHERE id = $1`,
      [id],
    )
    expect(server.rows[0]?.slug).toBe('hello-big-world')
    let local = (
      await c.query<LocalNote>('SELECT title, slug, created_at, updated_at FROM notes WHERE id = ?', [id])
    )[0]
    expect(local?.slug).toBe('hello-big-world')
    // The server's default, not whatever the local row had.
    expect(local?.created_at).toBe(server.rows[0]?.created_at)

    // An update: the trigger rewrites the slug again, and the answer brings it.
    await c.execute('UPDATE notes SET title = ? WHERE id = ?', ['Second Title', id])
    await c.syncNow().catch(() => {})
    expect(await c.pendingChangeCount()).toBe(0)
    local = (await c.query<LocalNote>('SELECT title, slug, created_at, updated_at FROM notes WHERE id = ?', [id]))[0]
    expect(local).toMatchObject({ title: 'Second Title', slug: 'second-title', created_at: server.rows[0]?.created_at })
    const { rows } = await db.pool.query<{ slug: string }>('SELECT slug FROM notes WHERE id = $1', [id])
    expect(rows[0]?.slug).toBe('second-title')
  })
})
