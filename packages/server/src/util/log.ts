/**
 * Logging helpers: error facts that never carry row data, and the logger used when the caller gives none.
 */

/** A pino-compatible logger (only the methods we call): the one logger type of the server. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/**
 * SQLSTATE classes whose messages are about the server, the connection, the schema or the transaction, never a
 * value from a row. Every other class (22 data exception: `invalid input syntax for type bigint: "…"`, 23 integrity
 * constraint, P0 raised by a trigger or bucket function, …) may quote one, so its message is withheld.
 */
const VALUE_FREE_CLASSES = new Set([
  '08', // connection exception
  '0A', // feature not supported
  '25', // invalid transaction state
  '28', // invalid authorization
  '3D', // invalid catalog name
  '3F', // invalid schema name
  '40', // transaction rollback (serialization failure, deadlock)
  '42', // syntax error or access rule violation
  '53', // insufficient resources
  '54', // program limit exceeded
  '55', // object not in prerequisite state
  '57', // operator intervention (shutdown, statement timeout)
  '58', // system error
  'F0', // configuration file error
])

export const WITHHELD = '[message withheld from logs: it may quote row data]'

interface ErrorLike {
  name?: unknown
  code?: unknown
  message?: unknown
  stack?: unknown
  severity?: unknown
  cause?: unknown
}

/** A PostgreSQL server error (pg's DatabaseError: a five-character SQLSTATE and a severity). */
function sqlState(e: ErrorLike): string | undefined {
  return typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string'
    ? e.code
    : undefined
}

/** Walks `err` and its causes: the SQLSTATE found and the messages that must not be logged. */
function inspect(err: unknown): { sqlstate: string | undefined; withheld: string[] } {
  const withheld: string[] = []
  let sqlstate: string | undefined
  const seen = new Set<unknown>()
  let e: unknown = err
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e)
    const x = e as ErrorLike
    const state = sqlState(x)
    if (state) {
      sqlstate ??= state
      if (!VALUE_FREE_CLASSES.has(state.slice(0, 2)) && typeof x.message === 'string' && x.message !== '') {
        withheld.push(x.message)
      }
    }
    e = x.cause
  }
  return { sqlstate, withheld }
}

/** `text` with every withheld message (also when a wrapper error quotes it) replaced. */
function scrub(text: unknown, withheld: readonly string[]): unknown {
  if (typeof text !== 'string') return text
  return withheld.reduce((t, m) => t.replaceAll(m, WITHHELD), text)
}

/**
 * Error facts safe to log at any level: name, code, SQLSTATE, message and stack, with PostgreSQL messages that may
 * quote row values withheld (also inside wrapping errors' messages), and never `detail`, `where`, `hint` or query
 * parameters.
 */
export function safeErrorFacts(err: unknown, withStack = true): { [key: string]: unknown } {
  if (!err || typeof err !== 'object') return { message: String(err) }
  const e = err as ErrorLike
  const { sqlstate, withheld } = inspect(err)
  return {
    name: e.name,
    code: e.code,
    ...(sqlstate && sqlstate !== e.code ? { sqlstate } : {}),
    message: scrub(e.message, withheld),
    ...(withStack && e.stack !== undefined ? { stack: scrub(e.stack, withheld) } : {}),
  }
}

/** The message of `err`, safe to log or show on /healthz (see {@link safeErrorFacts}). */
export function safeErrorMessage(err: unknown): string {
  return String(safeErrorFacts(err, false).message)
}

function line(msg: string | undefined, obj: object): string {
  const err = (obj as { err?: { message?: unknown } }).err
  const detail = err && typeof err.message === 'string' ? `: ${err.message}` : ''
  return `[synchro] ${msg ?? 'error'}${detail}`
}

/**
 * The logger used when none is given: errors go to `console.error` (a library user must see that the WAL consumer
 * cannot start or a request failed), everything else is dropped. Pass `logger` (pino, or your own) to change this.
 */
export const defaultLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error(obj, msg) {
    console.error(line(msg, obj))
  },
}
