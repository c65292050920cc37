/**
 * Every synchrod setting, in one table. The table drives argument parsing, environment variables, config-file keys,
 * precedence (flag > env > config file > default), validation, `--help` and docs/configuration.md, so a setting
 * added here shows up everywhere at once.
 */

export const COMMANDS = {
  serve: 'Run the sync server (default): HTTP API, /healthz, /metrics and, unless --no-consumer, the WAL consumer.',
  consume: 'Run only the WAL consumer (leader-elected) plus /healthz and /metrics, for split deployments.',
  migrate:
    "Print the infrastructure SQL (sync_* tables) and the configured tables' (owner, id) indexes; --apply runs it.",
  rls: 'Print the row-level-security policies for the configured tables; --apply applies them (idempotent).',
  compact: 'Run one compaction pass and print its result as JSON.',
  token: 'Mint a development HS256 JWT signed with JWT_SECRET.',
  status: 'Show clients, changelog size and range, replication slot lag and the consumer leader.',
  typegen:
    'Print TypeScript row types of the synced tables (from the database, or --schema-url); --output writes a file.',
  docs: 'Print docs/configuration.md (generated from this table); --output writes it to a file.',
} as const

export type CommandName = keyof typeof COMMANDS

type Kind = 'string' | 'boolean' | 'integer' | 'duration'

export interface OptionSpec {
  /** camelCase key; also the key in the config file when `config` is set. */
  readonly name: string
  /** Long flag without the leading dashes (booleans also accept `--no-<flag>`). */
  readonly flag: string
  readonly env?: string
  /** Path in the JSON config file, e.g. `compaction.intervalMs`. */
  readonly config?: string
  readonly kind: Kind
  readonly default?: string | number | boolean
  /** How the default reads in --help and the docs when it is computed. */
  readonly defaultText?: string
  readonly choices?: readonly string[]
  /** Never echoed (help shows "set"/"unset"; logs never include it). */
  readonly secret?: boolean
  /**
   * Given (flag or environment variable) but empty or only whitespace is an error, not "unset": a blank secret must
   * never switch authentication off.
   */
  readonly nonBlank?: boolean
  /** Shortest accepted value in bytes (UTF-8). */
  readonly minBytes?: number
  readonly commands: readonly CommandName[]
  readonly description: string
}

const ALL: readonly CommandName[] = ['serve', 'consume', 'migrate', 'rls', 'compact', 'token', 'status', 'typegen']
const DB: readonly CommandName[] = ['serve', 'consume', 'migrate', 'rls', 'compact', 'status', 'typegen']
const RUNNERS: readonly CommandName[] = ['serve', 'consume']

/** The table. Order = order in --help and the docs. */
export const OPTIONS = [
  {
    name: 'config',
    flag: 'config',
    env: 'SYNCHRO_CONFIG',
    kind: 'string',
    defaultText: '`./synchro.config.json` when present',
    commands: DB,
    description:
      'JSON config file: `tables`, `minClientVersion`, `conflictResolver`, `clockSkewToleranceMs`, `compaction`.',
  },
  {
    name: 'databaseUrl',
    flag: 'database-url',
    env: 'DATABASE_URL',
    kind: 'string',
    secret: true,
    // Blank is an error, not "absent": an empty DATABASE_URL must not silently start an embedded PostgreSQL.
    nonBlank: true,
    defaultText: 'embedded PostgreSQL',
    commands: DB,
    description:
      'PostgreSQL connection string. When absent, an embedded PostgreSQL 17 runs with data in --data-dir. Set but empty is an error.',
  },
  {
    name: 'replicationUrl',
    flag: 'replication-url',
    env: 'REPLICATION_URL',
    kind: 'string',
    secret: true,
    defaultText: 'DATABASE_URL',
    commands: RUNNERS,
    description: 'Connection string for the replication and leader-lock connections (same database).',
  },
  {
    name: 'dataDir',
    flag: 'data-dir',
    env: 'SYNCHRO_DATA_DIR',
    kind: 'string',
    default: './.synchro/pgdata',
    commands: DB,
    description: 'Data folder of the embedded PostgreSQL (used only without DATABASE_URL).',
  },
  {
    name: 'embeddedRestarts',
    flag: 'embedded-restarts',
    env: 'SYNCHRO_EMBEDDED_RESTARTS',
    kind: 'integer',
    default: 8,
    commands: RUNNERS,
    description:
      'Embedded PostgreSQL that dies is restarted with backoff (0.5 s doubling to 10 s); after this many failed attempts in a row synchrod exits 1. 0: exit at once.',
  },
  {
    name: 'demo',
    flag: 'demo',
    env: 'SYNCHRO_DEMO',
    kind: 'boolean',
    default: false,
    commands: DB,
    description:
      'Create the Northwind demo schema with seed rows and sync its tables (ignores `tables` in the config).',
  },
  {
    name: 'listenAddr',
    flag: 'listen',
    env: 'LISTEN_ADDR',
    config: 'listenAddr',
    kind: 'string',
    default: ':8080',
    commands: RUNNERS,
    description: 'HTTP address `[HOST]:PORT`; an empty host listens on all interfaces, port 0 picks a free port.',
  },
  {
    name: 'jwtSecret',
    flag: 'jwt-secret',
    env: 'JWT_SECRET',
    kind: 'string',
    secret: true,
    nonBlank: true,
    minBytes: 32,
    commands: ['serve', 'token'],
    description:
      'HS256/384/512 shared secret for Bearer JWTs, at least 32 bytes (e.g. `openssl rand -hex 32`). Set but empty is an error.',
  },
  {
    name: 'jwksUrl',
    flag: 'jwks-url',
    env: 'JWKS_URL',
    kind: 'string',
    nonBlank: true,
    commands: ['serve'],
    description: 'JWKS endpoint for RS*/ES* Bearer JWTs (checked at startup). Set but empty is an error.',
  },
  {
    name: 'devHeaderAuth',
    flag: 'dev-header-auth',
    env: 'SYNCHRO_DEV_HEADER_AUTH',
    kind: 'boolean',
    defaultText: 'on only when no JWT_SECRET/JWKS_URL',
    commands: ['serve'],
    description:
      'Trust the `X-User-ID` header as the user id: no authentication, development only. `false` requires JWT_SECRET or JWKS_URL.',
  },
  {
    name: 'jwtUserClaim',
    flag: 'jwt-user-claim',
    env: 'JWT_USER_CLAIM',
    config: 'jwtUserClaim',
    kind: 'string',
    default: 'sub',
    commands: ['serve', 'token'],
    description: 'JWT claim holding the user id.',
  },
  {
    name: 'adminToken',
    flag: 'admin-token',
    env: 'ADMIN_TOKEN',
    kind: 'string',
    secret: true,
    commands: RUNNERS,
    description:
      'Bearer token for the status page (`/status`, `/status.json`). Unset: the page is served only in dev header mode.',
  },
  {
    name: 'webDir',
    flag: 'web',
    env: 'SYNCHRO_WEB_DIR',
    kind: 'string',
    commands: ['serve'],
    description:
      'Serve the static files of this folder at `/` (the demo web app: `npm start` builds and passes it). Off unless given.',
  },
  {
    name: 'slotName',
    flag: 'slot-name',
    env: 'SLOT_NAME',
    config: 'slotName',
    kind: 'string',
    default: 'synchro_slot',
    commands: ['serve', 'consume', 'status'],
    description: 'Logical replication slot (one per deployment sharing a PostgreSQL server).',
  },
  {
    name: 'publicationName',
    flag: 'publication-name',
    env: 'PUBLICATION_NAME',
    config: 'publicationName',
    kind: 'string',
    default: 'synchro_pub',
    commands: ['serve', 'consume'],
    description: 'Publication covering the registered tables.',
  },
  {
    name: 'consumer',
    flag: 'consumer',
    env: 'SYNCHRO_CONSUMER',
    kind: 'boolean',
    default: true,
    commands: ['serve'],
    description: 'Run the WAL consumer in this process (`--no-consumer` when `synchrod consume` runs elsewhere).',
  },
  {
    name: 'liveListen',
    flag: 'live-listen',
    env: 'LIVE_LISTEN',
    kind: 'boolean',
    default: true,
    commands: ['serve'],
    description:
      'LISTEN for the capture leader’s notifications to poke live streams on commit (`--no-live-listen` behind a transaction-mode pooler: the changelog head is then polled every 100 ms).',
  },
  {
    name: 'minClientVersion',
    flag: 'min-client-version',
    env: 'MIN_CLIENT_VERSION',
    config: 'minClientVersion',
    kind: 'string',
    commands: ['serve'],
    description: 'Minimum app version (semver); older `X-App-Version` clients get 426.',
  },
  {
    name: 'conflictResolver',
    flag: 'conflict-resolver',
    env: 'CONFLICT_RESOLVER',
    config: 'conflictResolver',
    kind: 'string',
    default: 'lww',
    choices: ['lww', 'server_wins'],
    commands: ['serve'],
    description: 'Conflict resolution for updates: last-write-wins or server-wins.',
  },
  {
    name: 'clockSkewToleranceMs',
    flag: 'clock-skew-tolerance-ms',
    env: 'CLOCK_SKEW_TOLERANCE_MS',
    config: 'clockSkewToleranceMs',
    kind: 'integer',
    default: 0,
    commands: ['serve'],
    description: 'Last-write-wins tolerance: a client write this much older than the server row still wins.',
  },
  {
    name: 'compactionIntervalMs',
    flag: 'compaction-interval',
    env: 'COMPACTION_INTERVAL',
    config: 'compaction.intervalMs',
    kind: 'duration',
    defaultText: 'off',
    commands: ['serve'],
    description: 'Run compaction in the background this often (`ms`, or `30s`, `15m`, `6h`, `1d`).',
  },
  {
    name: 'compactionStaleThresholdMs',
    flag: 'compaction-stale-threshold',
    env: 'COMPACTION_STALE_THRESHOLD',
    config: 'compaction.staleThresholdMs',
    kind: 'duration',
    default: 7 * 24 * 60 * 60 * 1000,
    defaultText: '7d',
    commands: ['serve', 'compact', 'status'],
    description:
      'Clients whose pull checkpoint has not advanced (nor caught up) for this long are deactivated by compaction (and shown as stale by status).',
  },
  {
    name: 'compactionBatchSize',
    flag: 'compaction-batch-size',
    env: 'COMPACTION_BATCH_SIZE',
    config: 'compaction.batchSize',
    kind: 'integer',
    default: 10_000,
    commands: ['serve', 'compact'],
    description: 'Changelog rows deleted per statement by compaction.',
  },
  {
    name: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout',
    env: 'SHUTDOWN_TIMEOUT',
    kind: 'duration',
    default: 30_000,
    defaultText: '30s',
    commands: RUNNERS,
    description: 'On SIGINT/SIGTERM, how long in-flight requests may take before connections are cut.',
  },
  {
    name: 'requestTimeoutMs',
    flag: 'request-timeout',
    env: 'REQUEST_TIMEOUT',
    kind: 'duration',
    default: 5_000,
    defaultText: '5s',
    commands: ['serve'],
    description:
      'Deadline of every /sync request: when the database makes no progress on it for this long, the answer is ' +
      '503 + Retry-After and nothing commits (also its statement and lock timeout). 0 = none.',
  },
  {
    name: 'maxInFlight',
    flag: 'max-in-flight',
    env: 'MAX_IN_FLIGHT',
    kind: 'integer',
    default: 256,
    commands: ['serve'],
    description: '/sync requests served at once, all users; beyond → 503 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxInFlightPerUser',
    flag: 'max-in-flight-per-user',
    env: 'MAX_IN_FLIGHT_PER_USER',
    kind: 'integer',
    default: 8,
    commands: ['serve'],
    description: '/sync requests served at once for one user; beyond → 429 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxBodyBytesInFlight',
    flag: 'max-body-bytes-in-flight',
    env: 'MAX_BODY_BYTES_IN_FLIGHT',
    kind: 'integer',
    default: 16 * 1024 * 1024,
    defaultText: '16777216 (16 MiB)',
    commands: ['serve'],
    description:
      'Request body bytes held in memory at once, all requests (a body alone is bounded by the 10 MiB body ' +
      'limit); beyond → 503 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxJsonDepth',
    flag: 'max-json-depth',
    env: 'MAX_JSON_DEPTH',
    kind: 'integer',
    default: 64,
    commands: ['serve'],
    description:
      'Deepest nesting of a pushed `data` object (itself level 1); deeper → `rejected_terminal` `invalid_data`. ' +
      'Stored rows nesting deeper are left out of pages (logged, recorded in sync_rule_failures).',
  },
  {
    name: 'maxClientsPerUser',
    flag: 'max-clients-per-user',
    env: 'MAX_CLIENTS_PER_USER',
    kind: 'integer',
    default: 100,
    commands: ['serve'],
    description: 'Active clients one user may register; a new client_id beyond → 403. 0 = unbounded.',
  },
  {
    name: 'logLevel',
    flag: 'log-level',
    env: 'LOG_LEVEL',
    config: 'logLevel',
    kind: 'string',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    commands: ALL,
    description: 'Log level of the JSON log lines on stdout (commands other than serve/consume log to stderr).',
  },
  {
    name: 'apply',
    flag: 'apply',
    kind: 'boolean',
    default: false,
    commands: ['migrate', 'rls'],
    description: 'Apply the SQL instead of printing it.',
  },
  {
    name: 'json',
    flag: 'json',
    kind: 'boolean',
    default: false,
    commands: ['status'],
    description: 'Print JSON instead of text.',
  },
  {
    name: 'sub',
    flag: 'sub',
    kind: 'string',
    commands: ['token'],
    description: 'User id to put in the token (required).',
  },
  {
    name: 'ttl',
    flag: 'ttl',
    kind: 'duration',
    default: 60 * 60 * 1000,
    defaultText: '1h',
    commands: ['token'],
    description: 'Token lifetime.',
  },
  {
    name: 'output',
    flag: 'output',
    kind: 'string',
    commands: ['docs', 'typegen'],
    description: 'Write the generated text (markdown, TypeScript) to this file instead of stdout.',
  },
  {
    name: 'schemaUrl',
    flag: 'schema-url',
    env: 'SYNCHRO_SCHEMA_URL',
    kind: 'string',
    commands: ['typegen'],
    description: 'Read the schema from a running server (`http://host:8080`) instead of the database.',
  },
  {
    name: 'schemaToken',
    flag: 'schema-token',
    env: 'SYNCHRO_SCHEMA_TOKEN',
    kind: 'string',
    secret: true,
    commands: ['typegen'],
    description: 'Bearer token for --schema-url (without it, `X-User-ID: typegen` is sent, for dev servers).',
  },
] as const satisfies readonly OptionSpec[]

type Spec = (typeof OPTIONS)[number]
type ValueOf<K extends Kind> = K extends 'boolean' ? boolean : K extends 'string' ? string : number
/** Resolved settings: options with a default are always set. */
export type Options = {
  [S in Spec as S['name']]: S extends { default: unknown } ? ValueOf<S['kind']> : ValueOf<S['kind']> | undefined
}
export type OptionName = keyof Options

/** A configuration problem; the message names the setting (flag, variable or config field) and what is wrong. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

const BY_FLAG = new Map<string, OptionSpec>(OPTIONS.map((o) => [o.flag, o]))

export interface ParsedArgs {
  command: CommandName
  /** Raw flag values by option name (strings; booleans as true/false). */
  flags: Partial<Record<OptionName, string | boolean>>
  help: boolean
  version: boolean
}

/** True when `arg` is a `--flag` that takes its value from the next word (`--listen :8080`, not `--listen=:8080`). */
function takesNextWord(arg: string): boolean {
  if (!arg.startsWith('--') || arg.includes('=')) return false
  const spec = BY_FLAG.get(arg.slice(2))
  return spec !== undefined && spec.kind !== 'boolean'
}

/**
 * Parses `[command] [--flag value | --flag=value | --bool | --no-bool]…`. Flags may come before the command as well
 * as after it (`synchrod --demo rls` = `synchrod rls --demo`): the command is the first word that is neither a flag
 * nor a flag's value.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { command: 'serve', flags: {}, help: false, version: false }
  const flagWords: string[] = []
  const words: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (!arg.startsWith('-')) {
      words.push(arg)
      continue
    }
    flagWords.push(arg)
    const next = argv[i + 1]
    if (takesNextWord(arg) && next !== undefined && !next.startsWith('--')) {
      flagWords.push(next)
      i++
    }
  }
  const [first, second, ...extra] = words
  if (first !== undefined) {
    if (first === 'help') {
      out.help = true
      if (second !== undefined && second in COMMANDS) out.command = second as CommandName
      else if (second !== undefined) throw new ConfigError(`unexpected argument "${second}"`)
    } else if (!(first in COMMANDS)) {
      throw new ConfigError(`unknown command "${first}" (commands: ${Object.keys(COMMANDS).join(', ')})`)
    } else {
      out.command = first as CommandName
      if (second !== undefined) throw new ConfigError(`unexpected argument "${second}"`)
    }
  }
  if (extra.length > 0) throw new ConfigError(`unexpected argument "${extra[0]}"`)
  parseFlags(flagWords, out)
  return out
}

/** The flags of `parseArgs`, checked against the command now that it is known. */
function parseFlags(argv: readonly string[], out: ParsedArgs): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '-h' || arg === '--help') {
      out.help = true
      continue
    }
    if (arg === '-v' || arg === '--version') {
      out.version = true
      continue
    }
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}"`)
    const eq = arg.indexOf('=')
    let key = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    let inline: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1)
    let spec = BY_FLAG.get(key)
    if (!spec && key.startsWith('no-') && BY_FLAG.get(key.slice(3))?.kind === 'boolean') {
      spec = BY_FLAG.get(key.slice(3))
      key = key.slice(3)
      if (inline !== undefined) throw new ConfigError(`--no-${key} takes no value`)
      inline = 'false'
    }
    if (!spec) throw new ConfigError(`unknown flag --${key} (see synchrod ${out.command} --help)`)
    if (!spec.commands.includes(out.command)) {
      throw new ConfigError(`--${key} does not apply to "synchrod ${out.command}"`)
    }
    const name = spec.name as OptionName
    if (spec.kind === 'boolean') {
      out.flags[name] = inline === undefined ? true : parseBoolean(inline, `--${key}`)
      continue
    }
    if (inline === undefined) {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith('--')) throw new ConfigError(`--${key} needs a value`)
      inline = next
      i++
    }
    out.flags[name] = inline
  }
}

/** Where a value came from, as the user would write it: `--listen`, `LISTEN_ADDR`, `config.json: minClientVersion`. */
function sourceLabel(spec: OptionSpec, from: 'flag' | 'env' | 'config', configPath?: string): string {
  if (from === 'flag') return `--${spec.flag}`
  if (from === 'env') return spec.env as string
  return `config file ${configPath ?? ''}: ${spec.config}`
}

function parseBoolean(raw: string, label: string): boolean {
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false
  throw new ConfigError(`${label}: expected true or false, got ${JSON.stringify(raw)}`)
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `500`, `500ms`, `30s`, `15m`, `1h`, `7d` → milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim())
  if (!m) return undefined
  const n = Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number)
  return Number.isFinite(n) ? Math.round(n) : undefined
}

function convert(spec: OptionSpec, raw: unknown, label: string): string | number | boolean {
  const secretSafe = (v: unknown) => (spec.secret ? '(hidden)' : JSON.stringify(v))
  switch (spec.kind) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw
      if (typeof raw === 'string') return parseBoolean(raw, label)
      throw new ConfigError(`${label}: expected true or false, got ${secretSafe(raw)}`)
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN
      if (!Number.isSafeInteger(n) || n < 0)
        throw new ConfigError(`${label}: expected a non-negative integer, got ${secretSafe(raw)}`)
      return n
    }
    case 'duration': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseDuration(raw) : undefined
      if (n === undefined || !Number.isSafeInteger(n) || n < 0) {
        throw new ConfigError(`${label}: expected a duration in ms or like 30s, 15m, 1h, 7d, got ${secretSafe(raw)}`)
      }
      return n
    }
    case 'string': {
      if (typeof raw !== 'string') throw new ConfigError(`${label}: expected a string, got ${secretSafe(raw)}`)
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new ConfigError(`${label}: must be one of ${spec.choices.join(', ')}; got ${secretSafe(raw)}`)
      }
      return raw
    }
  }
}

function getPath(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

/** Settings that options in the config file may carry, by top-level key (other than `tables`). */
export const CONFIG_KEYS = new Set(
  (OPTIONS as readonly OptionSpec[]).flatMap((o) => (o.config ? [o.config.split('.')[0] as string] : [])),
)

/**
 * Resolves every option of `command`: flag, then environment variable, then config file, then default.
 * Empty environment variables count as unset, except for `nonBlank` options (authentication, database), where a blank value
 * given anywhere is an error naming the flag or variable: `JWT_SECRET=` must not silently turn authentication off.
 */
export function resolveOptions(
  command: CommandName,
  flags: ParsedArgs['flags'],
  env: Record<string, string | undefined>,
  config: Record<string, unknown> = {},
  configPath?: string,
): Options {
  const out: Record<string, unknown> = {}
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (!spec.commands.includes(command)) continue
    const flag = flags[spec.name as OptionName]
    const envValue = spec.env ? env[spec.env] : undefined
    const configValue = spec.config ? getPath(config, spec.config) : undefined
    let value: unknown
    let label = ''
    if (flag !== undefined) {
      label = sourceLabel(spec, 'flag')
      value = convert(spec, flag, label)
    } else if (envValue !== undefined && (envValue !== '' || spec.nonBlank)) {
      label = sourceLabel(spec, 'env')
      value = convert(spec, envValue, label)
    } else if (configValue !== undefined && configValue !== null) {
      label = sourceLabel(spec, 'config', configPath)
      value = convert(spec, configValue, label)
    } else value = spec.default
    if (label && typeof value === 'string') checkLength(spec, value, label)
    out[spec.name] = value
  }
  return out as Options
}

function checkLength(spec: OptionSpec, value: string, label: string): void {
  if (spec.nonBlank && value.trim() === '') {
    throw new ConfigError(`${label} is set but empty: give a value, or leave it unset`)
  }
  const bytes = Buffer.byteLength(value, 'utf8')
  if (spec.minBytes !== undefined && bytes < spec.minBytes) {
    throw new ConfigError(
      `${label} is too short (${bytes} bytes): use at least ${spec.minBytes} random bytes (RFC 7518 §3.2), ` +
        'e.g. the output of `openssl rand -hex 32`',
    )
  }
}

/** Options of one command, in table order. */
export function optionsFor(command: CommandName): OptionSpec[] {
  return (OPTIONS as readonly OptionSpec[]).filter((o) => o.commands.includes(command))
}

function defaultOf(o: OptionSpec): string {
  if (o.defaultText) return o.defaultText
  if (o.default === undefined) return ''
  return typeof o.default === 'string' ? `\`${o.default}\`` : `\`${String(o.default)}\``
}

/** `--help` text for a command. */
export function helpText(command: CommandName): string {
  const lines = [
    `synchrod ${command} — ${COMMANDS[command]}`,
    '',
    'Usage: synchrod [command] [flags]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, text]) => `  ${name.padEnd(9)} ${text}`),
    '',
    `Flags for ${command} (flag > env var > config file > default):`,
  ]
  for (const o of optionsFor(command)) {
    const flag =
      o.kind === 'boolean'
        ? `--${o.default === true ? 'no-' : ''}${o.flag}`
        : `--${o.flag} <${o.kind === 'string' ? 'value' : o.kind}>`
    const meta = [
      o.env ? `env ${o.env}` : undefined,
      o.config ? `config ${o.config}` : undefined,
      defaultOf(o) ? `default ${defaultOf(o).replaceAll('`', '')}` : undefined,
      o.choices ? `one of ${o.choices.join('|')}` : undefined,
    ].filter(Boolean)
    lines.push(`  ${flag}`)
    lines.push(`      ${o.description}${meta.length ? ` [${meta.join('; ')}]` : ''}`)
  }
  lines.push('  -h, --help      Show this help', '  -v, --version   Print the version', '')
  return lines.join('\n')
}

/** Pretty JSON with short string arrays on one line, as the repository's formatter writes it. */
function exampleJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /\[\n\s*((?:"[^"\n]*",\n\s*)*"[^"\n]*")\n\s*\]/g,
    (_, items: string) => `[${items.split(/,\n\s*/).join(', ')}]`,
  )
}

/** A markdown table with padded columns, as the repository's formatter (Biome) writes it, so it stays untouched. */
function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)]
}

/** docs/configuration.md, generated from the table (`synchrod docs --output docs/configuration.md`). */
export function configurationMarkdown(): string {
  const esc = (s: string) => s.replaceAll('|', '\\|')
  const out = [
    '# synchrod configuration',
    '',
    '<!-- Generated from packages/synchrod/src/options.ts by `npm run docs -w synchrod`. Do not edit by hand. -->',
    '',
    'Every setting can be given as a command-line flag, an environment variable and, where listed, a key of the JSON',
    'config file. **Flags override environment variables, which override the config file**, which overrides the',
    'default. Empty environment variables count as unset, except `JWT_SECRET` and `JWKS_URL` (see Authentication).',
    '',
    '## Commands',
    '',
    ...table(
      ['Command', 'What it does'],
      Object.entries(COMMANDS).map(([name, text]) => [`\`synchrod ${name}\``, esc(text)]),
    ),
    '',
    '`synchrod` with no command runs `serve`. `synchrod <command> --help` lists the flags of one command.',
    '',
    '## Settings',
    '',
  ]
  const rows: string[][] = []
  for (const o of OPTIONS as readonly OptionSpec[]) {
    const flag =
      o.kind === 'boolean'
        ? `\`--${o.flag}\`${o.default === true ? ` / \`--no-${o.flag}\`` : ''}`
        : `\`--${o.flag} <${o.kind === 'string' ? 'value' : o.kind}>\``
    const choices = o.choices ? ` One of ${o.choices.map((c) => `\`${c}\``).join(', ')}.` : ''
    const secret = o.secret ? ' Secret: never logged.' : ''
    rows.push([
      flag,
      o.env ? `\`${o.env}\`` : '',
      o.config ? `\`${o.config}\`` : '',
      esc(defaultOf(o)),
      o.commands.join(', '),
      `${esc(o.description)}${choices}${secret}`,
    ])
  }
  out.push(...table(['Flag', 'Env var', 'Config key', 'Default', 'Commands', 'Description'], rows))
  out.push(
    '',
    'Durations accept milliseconds (`1500`) or a number with a unit: `500ms`, `30s`, `15m`, `6h`, `1d`. In the config',
    'file, numbers are milliseconds.',
    '',
    '## Config file',
    '',
    '`--config <file>` (or `SYNCHRO_CONFIG`); without either, `./synchro.config.json` is read when it exists. Unknown',
    'keys are errors, so a typo never silently falls back to a default.',
    '',
    '```json',
    exampleJson({
      tables: [
        { tableName: 'orders', ownerColumn: 'user_id' },
        { tableName: 'order_details', parentTable: 'orders', parentFkColumn: 'order_id', dependencies: ['orders'] },
        { tableName: 'products', pushPolicy: 'disabled' },
      ],
      minClientVersion: '1.2.0',
      conflictResolver: 'lww',
      clockSkewToleranceMs: 0,
      compaction: { intervalMs: 3_600_000, staleThresholdMs: 604_800_000, batchSize: 10_000 },
    }),
    '```',
    '',
    '`tables` is a list of table configurations (camelCase, see the table below); only `tableName` is required.',
    `Other top-level keys: ${[...CONFIG_KEYS].map((k) => `\`${k}\``).join(', ')}.`,
    '',
    ...table(
      ['Table field', 'Type', 'Meaning'],
      TABLE_FIELDS.map(([name, type, text]) => [`\`${name}\``, type, esc(text)]),
    ),
    '',
    '## Limits',
    '',
    'Bad input gets a 4xx, never a 500, and no client can take the server down. Fixed limits:',
    '',
    '- `client_id`, `platform`, `app_version` (register, and `client_id` of `/sync/events`) and the user identity',
    '  (token claim or `X-User-ID`): at most 255 characters; `client_name`: at most 1 024. No NUL anywhere. Beyond →',
    '  400 `invalid request body` (401 `invalid token` for the identity).',
    '- Request body: 10 MiB → 413; at most 1 000 `changes` per push → 400.',
    '',
    'Configurable (see the table above; library: `createSyncHandler` and `createEngine` options of the same name):',
    '',
    '- `--request-timeout` (`requestTimeoutMs`, 5 s): when the database makes no progress on a /sync request for',
    '  this long (stopped, overloaded, a lock held, no free connection), the answer is 503 + `Retry-After` and the',
    '  request commits nothing — a commit already under way is waited for, so an answer never contradicts the',
    '  database. Every completed round trip of the request starts the period again, so a large push that keeps the',
    "  database busy is not cut off half way. It is also the request transaction's `statement_timeout` and",
    '  `lock_timeout`. Event streams are bounded only while they open. /healthz has its own connection.',
    '- `--max-in-flight` (256) and `--max-in-flight-per-user` (8): requests being served (body read, work, answer). A',
    '  slot is held until the work really ends, even when the deadline answered first, so a stalled database cannot',
    '  pile up work. Beyond: 503 (global) or 429 (per user), both with `Retry-After`. Small requests cost little',
    "  (they queue for the pool's connections); the global bound is sized for a few hundred active clients.",
    '- `--max-body-bytes-in-flight` (16 MiB): request bodies held in memory at once (reserved from Content-Length',
    '  before reading, or as chunks arrive; one body alone is always admitted); beyond → 503 + `Retry-After`. A',
    '  request needs a few times its body size while it is parsed and written, and parsing blocks the event loop, so',
    '  this bounds peak memory and latency: with the defaults one maximum-size push is processed at a time next to',
    '  any number of small requests (docs/reliability.md, "Abuse", for RSS and /healthz figures).',
    '- `--max-json-depth` (64): nesting of a pushed `data` object (the object is level 1, `{"a":[1]}` is 2); deeper →',
    '  `rejected_terminal` `invalid_data` (never retryable). A stored row nesting deeper (written by SQL) is left out',
    '  of pull and snapshot pages with a warning and one `sync_rule_failures` row, and never fails a page.',
    '- `--max-clients-per-user` (100): active clients per user. Registering a new `client_id` beyond → 403',
    '  `too many clients for this user`; known clients always re-register. Clients deactivated by compaction do not',
    '  count. Concurrent registrations may overshoot by the per-user in-flight bound.',
    '- Compaction staleness (`--compaction-stale-threshold`) follows pull progress: pushes, empty pushes, registers',
    '  and event streams do not keep a client active; only a pull that advances its checkpoint (or finds it caught',
    '  up) does. A client deactivated this way that pulls later gets `snapshot_required` once compaction passed it.',
    '',
    '## Authentication',
    '',
    '- `JWT_SECRET`: Bearer JWTs signed with HS256/384/512; the user id is the `JWT_USER_CLAIM` claim.',
    '- `JWKS_URL`: Bearer JWTs signed with RS*/ES* keys from the JWKS endpoint (fetched once at startup to fail fast).',
    '- Neither: the user id is taken from the `X-User-ID` header, unauthenticated. The daemon logs a warning at',
    '  startup. Use it for local development only. `--dev-header-auth` asks for this mode explicitly (an error together',
    '  with `JWT_SECRET` or `JWKS_URL`); `SYNCHRO_DEV_HEADER_AUTH=false` makes a missing JWT configuration a startup',
    '  error instead, as production deployments should.',
    '- A `JWT_SECRET` or `JWKS_URL` (flag or variable) that is set but empty or blank is a startup error naming it, so a',
    '  templating mistake never turns authentication off. A `JWT_SECRET` shorter than 32 bytes is refused (RFC 7518',
    '  §3.2: an HS256 key must be at least as long as the hash).',
    '',
  )
  return out.join('\n')
}

/** TableConfig fields accepted in the config file: name, JSON type, meaning. */
export const TABLE_FIELDS: ReadonlyArray<readonly [string, 'string' | 'string[]' | 'boolean', string]> = [
  ['tableName', 'string', 'Table name, optionally schema-qualified (`app.orders`). Required.'],
  ['pushPolicy', 'string', '`owner_only` (default) or `disabled` (read-only).'],
  ['ownerColumn', 'string', "Column holding the owning user's id; rows are private to that user."],
  ['parentTable', 'string', 'Registered parent table whose owner owns this table’s rows.'],
  ['parentFkColumn', 'string', 'FK column pointing at the parent’s id.'],
  ['syncColumns', 'string[]', 'Only these columns leave the server (id and timestamps are always added).'],
  ['dependencies', 'string[]', 'Tables a client applies before this one.'],
  ['idColumn', 'string', 'Primary key column (default `id`).'],
  ['updatedAtColumn', 'string', 'Default `updated_at`.'],
  ['deletedAtColumn', 'string', 'Default `deleted_at`.'],
  ['protectedColumns', 'string[]', 'Extra columns clients may never write.'],
  ['bucketByColumn', 'string', 'Column whose value names the row’s bucket.'],
  ['bucketPrefix', 'string', 'Prefix of bucket names built from `bucketByColumn`.'],
  ['globalWhenBucketNull', 'boolean', 'A NULL bucket column puts the row in `global` (needs `allowGlobalRead`).'],
  ['allowGlobalRead', 'boolean', 'Rows with a NULL owner are readable by everyone.'],
  ['bucketFunction', 'string', 'SQL function `fn(table, op, new_row jsonb, old_row jsonb) returns setof text`.'],
]
