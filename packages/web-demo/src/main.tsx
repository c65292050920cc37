/**
 * Entry point: sign in (a demo user in dev mode, a pasted token in JWT mode), open the browser database and the
 * sync client for that user, then render the orders app under <SynchroProvider>.
 */
import { SynchroClient } from '@synchro/client'
import { openSqliteWasm } from '@synchro/client/sqlite-wasm'
import { SynchroProvider } from '@synchro/react'
import { useEffect, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { NetworkSwitch } from './network.js'
import { OrdersApp } from './orders-app.js'
import { clientIdFor, DEMO_USERS, loadSession, type Session, saveSession, sessionFromToken } from './session.js'

type AuthMode = 'header' | 'jwt'

interface Opened {
  client: SynchroClient
  network: NetworkSwitch
  /** Settles after the first sync attempt (which brings the schema and local tables on a fresh profile). */
  firstSync: Promise<void>
}

async function openClient(session: Session): Promise<Opened> {
  const network = new NetworkSwitch()
  const driver = await openSqliteWasm({
    // One database per user, so switching users never mixes their data.
    name: `demo-${session.userId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80)}.sqlite3`,
    createWorker: () => new Worker('/worker.js', { type: 'module', name: 'synchro-db' }),
    wasmURL: '/sqlite3.wasm',
  })
  const client = new SynchroClient({
    driver,
    serverURL: location.origin,
    ...(session.token ? { authProvider: () => session.token as string } : { userID: session.userId }),
    clientID: clientIdFor(session.userId),
    platform: 'web',
    appVersion: '1.0.0',
    syncInterval: 15,
    fetch: network.fetch,
  })
  await client.start()
  // A handle for the browser console (and the browser tests): `synchroDemo.client.query('SELECT …')`.
  ;(globalThis as { synchroDemo?: { client: SynchroClient } }).synchroDemo = { client }
  // Offline, the tables come from an earlier visit; the list shows whatever the local database has.
  return { client, network, firstSync: client.syncNow().catch(() => {}) }
}

function SignIn({ auth, onSignIn }: { auth: AuthMode; onSignIn: (s: Session) => void }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState('')
  return (
    <main className="signin">
      <h1>Synchro demo</h1>
      <p>Orders in PostgreSQL, synced into SQLite in this browser. Works offline.</p>
      {auth === 'header' ? (
        <div className="users">
          <p>Dev mode: pick a demo user.</p>
          {DEMO_USERS.map((u) => (
            <button
              key={u.userId}
              type="button"
              data-testid={`user-${u.name.toLowerCase()}`}
              onClick={() => onSignIn(u)}
            >
              {u.name}
            </button>
          ))}
        </div>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault()
            try {
              onSignIn(sessionFromToken(token))
            } catch (err) {
              setError((err as Error).message)
            }
          }}
        >
          <p>
            Paste a token (e.g. <code>npx synchrod token --sub &lt;uuid&gt;</code>):
          </p>
          <textarea value={token} onChange={(e) => setToken(e.target.value)} rows={4} data-testid="token" />
          <button type="submit">Sign in</button>
          {error && <p className="error">{error}</p>}
        </form>
      )}
    </main>
  )
}

function Root() {
  const [auth, setAuth] = useState<AuthMode | null>(null)
  const [session, setSession] = useState<Session | null>(loadSession)
  const [opened, setOpened] = useState<Opened | null>(null)
  const [ready, setReady] = useState(false)
  const [error, setError] = useState('')

  useEffect(() => {
    fetch('/web-config.json')
      .then((r) => r.json() as Promise<{ auth: AuthMode }>)
      .then((c) => setAuth(c.auth))
      .catch(() => setAuth('header'))
  }, [])

  useEffect(() => {
    if (!session) return
    let cancelled = false
    let mine: Opened | null = null
    openClient(session).then(
      (o) => {
        mine = o
        if (cancelled) void o.client.close()
        else {
          setOpened(o)
          void o.firstSync.then(() => !cancelled && setReady(true))
        }
      },
      (err: Error) => setError(err.message),
    )
    return () => {
      cancelled = true
      setOpened(null)
      setReady(false)
      if (mine) void mine.client.close()
    }
  }, [session])

  if (error) return <main className="signin error">Could not open the local database: {error}</main>
  const signIn = (s: Session) => {
    saveSession(s)
    setSession(s)
  }
  if (!session) return auth ? <SignIn auth={auth} onSignIn={signIn} /> : null
  if (!opened) return <main className="signin">Opening the local database…</main>
  return (
    <SynchroProvider client={opened.client}>
      <OrdersApp
        session={session}
        network={opened.network}
        ready={ready}
        onSignOut={() => {
          saveSession(null)
          setSession(null)
        }}
      />
    </SynchroProvider>
  )
}

const root = document.getElementById('root')
if (root) createRoot(root).render(<Root />)
