// @vitest-environment happy-dom
/**
 * The hooks against a real SynchroClient over better-sqlite3, rendered by React in happy-dom. Sync against a real
 * server is covered in hooks.pg.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type FetchLike, SynchroClient, type SynchroClientConfig } from '@synchro/client'
import { openBetterSqlite3 } from '@synchro/client/better-sqlite3'
import { act, cleanup, render, renderHook, waitFor } from '@testing-library/react'
import { createElement, type ReactNode } from 'react'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { SynchroProvider, useQuery, useSynchroClient, useSyncStatus } from './index.js'
import { tablesOf } from './tables-of.js'

const dir = mkdtempSync(path.join(tmpdir(), 'synchro-react-'))
const clients: SynchroClient[] = []
afterEach(cleanup)
afterAll(async () => {
  for (const c of clients.splice(0)) await c.close()
  rmSync(dir, { recursive: true, force: true })
})

let n = 0
async function newClient(over: Partial<SynchroClientConfig> = {}): Promise<SynchroClient> {
  const client = new SynchroClient({
    driver: await openBetterSqlite3(path.join(dir, `db-${n++}.sqlite`)),
    // Never contacted: these tests do not start sync.
    serverURL: 'http://127.0.0.1:9',
    userID: 'u1',
    clientID: `c-${n}`,
    appVersion: '1.0.0',
    ...over,
  })
  clients.push(client)
  await client.createTable('notes', [
    { name: 'id', type: 'TEXT', primaryKey: true },
    { name: 'body', type: 'TEXT' },
    { name: 'owner', type: 'TEXT' },
  ])
  return client
}

const seen: number[] = []
function NoteCount(): null {
  const { data } = useQuery<{ n: number }>('SELECT count(*) AS n FROM notes')
  if (data[0]) seen.push(data[0].n)
  return null
}

function wrapper(client: SynchroClient) {
  return ({ children }: { children: ReactNode }) => createElement(SynchroProvider, { client }, children)
}

describe('useQuery', () => {
  it('renders the rows and re-renders after a local write to the table', async () => {
    const client = await newClient()
    await client.execute(`INSERT INTO notes (id, body, owner) VALUES ('1', 'first', 'a')`)
    const { result } = renderHook(() => useQuery<{ body: string }>('SELECT body FROM notes ORDER BY id'), {
      wrapper: wrapper(client),
    })
    expect(result.current.isLoading).toBe(true)
    await waitFor(() => expect(result.current.data.map((r) => r.body)).toEqual(['first']))
    expect(result.current.isLoading).toBe(false)
    await act(() => client.execute(`INSERT INTO notes (id, body, owner) VALUES ('2', 'second', 'a')`))
    await waitFor(() => expect(result.current.data.map((r) => r.body)).toEqual(['first', 'second']))
  })

  it('re-runs with new parameters and ignores writes to tables it does not read', async () => {
    const client = await newClient()
    await client.createTable('other', [{ name: 'id', type: 'TEXT', primaryKey: true }])
    await client.executeBatch([
      { sql: `INSERT INTO notes (id, body, owner) VALUES ('1', 'a1', 'a'), ('2', 'b1', 'b')` },
    ])
    let renders = 0
    const { result, rerender } = renderHook(
      ({ owner }: { owner: string }) => {
        renders++
        return useQuery<{ body: string }>('SELECT body FROM notes WHERE owner = ?', [owner])
      },
      { wrapper: wrapper(client), initialProps: { owner: 'a' } },
    )
    await waitFor(() => expect(result.current.data).toEqual([{ body: 'a1' }]))
    rerender({ owner: 'b' })
    await waitFor(() => expect(result.current.data).toEqual([{ body: 'b1' }]))
    const before = renders
    await act(() => client.execute(`INSERT INTO other (id) VALUES ('x')`))
    // A write to an unrelated table is seen by a query on it, and by then the notes query would have re-rendered.
    const { result: other } = renderHook(() => useQuery('SELECT id FROM other'), { wrapper: wrapper(client) })
    await waitFor(() => expect(other.current.data).toHaveLength(1))
    expect(renders).toBe(before)
  })

  it('takes the tables to watch from options (a view is invisible to FROM parsing)', async () => {
    const client = await newClient()
    await client.execute(`CREATE VIEW note_count AS SELECT count(*) AS n FROM notes`)
    const { result } = renderHook(
      () => useQuery<{ n: number }>('SELECT n FROM note_count', [], { tables: ['notes'] }),
      {
        wrapper: wrapper(client),
      },
    )
    await waitFor(() => expect(result.current.data).toEqual([{ n: 0 }]))
    await act(() => client.execute(`INSERT INTO notes (id, body, owner) VALUES ('1', 'x', 'a')`))
    await waitFor(() => expect(result.current.data).toEqual([{ n: 1 }]))
  })

  it('reports a failing query as error instead of throwing', async () => {
    const client = await newClient()
    const { result } = renderHook(() => useQuery('SELECT nope FROM notes'), { wrapper: wrapper(client) })
    await waitFor(() => expect(result.current.error).toBeInstanceOf(Error))
    expect(result.current.isLoading).toBe(false)
    expect(result.current.data).toEqual([])
  })

  it('stops watching when the component unmounts', async () => {
    const client = await newClient()
    // Count the client's live watches: the hook must end its own when the component goes away.
    let watching = 0
    const watch = client.watch.bind(client)
    client.watch = ((...args: Parameters<typeof client.watch>) => {
      watching++
      const stop = watch(...args)
      return () => {
        watching--
        stop()
      }
    }) as typeof client.watch
    seen.length = 0
    const view = render(createElement(SynchroProvider, { client }, createElement(NoteCount)))
    await waitFor(() => expect(seen).toContain(0))
    expect(watching).toBe(1)
    view.unmount()
    expect(watching).toBe(0)
  })

  it('finds the tables after FROM and JOIN, quoted or not', () => {
    expect(tablesOf('SELECT * FROM orders o JOIN "order_details" d ON d.order_id = o.id')).toEqual([
      'orders',
      'order_details',
    ])
    expect(tablesOf('select x from (select * from a) left join b using (id)')).toEqual(['a', 'b'])
  })

  it('finds every table of a comma-separated FROM list, with or without aliases', () => {
    expect(tablesOf('SELECT o.id FROM orders o, customers c WHERE c.id = o.customer_id')).toEqual([
      'orders',
      'customers',
    ])
    expect(tablesOf('SELECT * FROM orders, customers')).toEqual(['orders', 'customers'])
    expect(tablesOf('SELECT * FROM orders AS o, "order items" AS i, [legacy] l, `x` WHERE 1')).toEqual([
      'orders',
      'order items',
      'legacy',
      'x',
    ])
    expect(tablesOf('SELECT * FROM a JOIN b ON a.id = b.id, c LEFT OUTER JOIN d USING (id) ORDER BY a.x, b.y')).toEqual(
      ['a', 'b', 'c', 'd'],
    )
    expect(tablesOf('SELECT * FROM (SELECT * FROM a) s, b WHERE s.id IN (SELECT id FROM c)')).toEqual(['a', 'b', 'c'])
    expect(tablesOf('SELECT * FROM (a JOIN b ON a.id = b.id), c')).toEqual(['a', 'b', 'c'])
  })

  it('takes the table of a schema-qualified name', () => {
    expect(tablesOf('SELECT * FROM main.orders')).toEqual(['orders'])
    expect(tablesOf('SELECT * FROM temp."scratch" t JOIN main.customers c ON 1, main.items')).toEqual([
      'scratch',
      'customers',
      'items',
    ])
  })

  it('ignores FROM in strings, comments and IS DISTINCT FROM, and table-valued functions', () => {
    expect(tablesOf(`SELECT 'FROM x' AS s FROM a -- FROM y\n WHERE a.v IS DISTINCT FROM 'z'`)).toEqual(['a'])
    expect(tablesOf('SELECT j.value FROM notes n, json_each(n.tags) j')).toEqual(['notes'])
  })

  it('falls back to every name in the SQL when a FROM clause has a form it does not understand', () => {
    expect(tablesOf('SELECT * FROM ? AS t JOIN orders o ON o.id = t.id')).toEqual([
      'SELECT',
      'FROM',
      'AS',
      't',
      'JOIN',
      'orders',
      'o',
      'ON',
      'id',
    ])
  })
})

describe('provider', () => {
  it('useSynchroClient returns the provided client and throws without a provider', async () => {
    const client = await newClient()
    const { result } = renderHook(() => useSynchroClient(), { wrapper: wrapper(client) })
    expect(result.current).toBe(client)
    expect(() => renderHook(() => useSynchroClient())).toThrow(/SynchroProvider/)
  })

  it('useSyncStatus shows a client that was never started as stopped and not syncing', async () => {
    const client = await newClient()
    const { result } = renderHook(() => useSyncStatus(), { wrapper: wrapper(client) })
    expect(result.current).toMatchObject({ status: 'stopped', syncing: false, lastSyncedAt: null, error: null })
  })
})

describe('useSyncStatus', () => {
  it('is online again once the server answers, even with an error', async () => {
    let mode: 'down' | '500' = 'down'
    const fetch: FetchLike = async () => {
      if (mode === 'down') throw new TypeError('fetch failed')
      return new Response(JSON.stringify({ error: 'boom' }), {
        status: 500,
        headers: { 'content-type': 'application/json' },
      })
    }
    const client = await newClient({ fetch, syncInterval: 0, live: false, maxRetryAttempts: 0 })
    const { result } = renderHook(() => useSyncStatus(), { wrapper: wrapper(client) })
    await act(async () => {
      await client.start().catch(() => {})
      await client.syncNow().catch(() => {})
    })
    await waitFor(() => expect(result.current).toMatchObject({ status: 'error', online: false }))
    expect(result.current.error?.code).toBe('NETWORK_ERROR')
    mode = '500'
    await act(async () => {
      await client.syncNow().catch(() => {})
    })
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.error?.code).toBe('SERVER_ERROR')
    expect(result.current.online).toBe(true)
  })
})

describe('React Native', () => {
  it('the bindings touch no DOM or browser global (they run unchanged under React Native)', () => {
    const dir = path.dirname(new URL(import.meta.url).pathname)
    const sources = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.includes('.test.'))
    expect(sources).toContain('use-query.ts')
    for (const f of sources) {
      const code = readFileSync(path.join(dir, f), 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')
      expect(code, f).not.toMatch(/\b(window|document|navigator|localStorage|react-dom)\b/)
    }
  })
})
