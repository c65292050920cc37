/** Who is signed in: a demo user (dev header mode) or the subject of a pasted JWT, kept across reloads. */

export interface Session {
  userId: string
  /** Display name (demo users) or the token's subject. */
  name: string
  /** Bearer token in JWT mode; absent in dev header mode. */
  token?: string
}

/** Demo users: the demo's owner columns are uuids. */
export const DEMO_USERS: readonly Session[] = [
  { name: 'Alice', userId: 'a11ce000-0000-4000-8000-00000000a11c' },
  { name: 'Bob', userId: 'b0b00000-0000-4000-8000-000000000b0b' },
]

const KEY = 'synchro-demo-session'

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Session | null
    return s && typeof s.userId === 'string' ? s : null
  } catch {
    return null
  }
}

export function saveSession(s: Session | null): void {
  if (s) localStorage.setItem(KEY, JSON.stringify(s))
  else localStorage.removeItem(KEY)
}

/** Reads the `sub` claim of a JWT (no verification: the server verifies; the app only needs the user id). */
export function sessionFromToken(token: string): Session {
  const part = token.trim().split('.')[1]
  if (!part) throw new Error('not a JWT (expected header.payload.signature)')
  const payload = JSON.parse(atob(part.replaceAll('-', '+').replaceAll('_', '/'))) as { sub?: unknown }
  if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('the token has no "sub" claim')
  return { userId: payload.sub, name: payload.sub, token: token.trim() }
}

/** One stable client id per browser profile and user (each browser is one device). */
export function clientIdFor(userId: string): string {
  const key = `synchro-demo-client:${userId}`
  let id = localStorage.getItem(key)
  if (!id) {
    id = crypto.randomUUID()
    localStorage.setItem(key, id)
  }
  return id
}
