/** What a synchrod setting is: the commands it applies to, its kind, where it may come from. */

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

export type Kind = 'string' | 'boolean' | 'integer' | 'duration'

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
  /** A string value must match this; the error shows `example`. */
  readonly pattern?: RegExp
  readonly example?: string
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

/** Command groups of the option table. */
export const ALL: readonly CommandName[] = [
  'serve',
  'consume',
  'migrate',
  'rls',
  'compact',
  'token',
  'status',
  'typegen',
]
export const DB: readonly CommandName[] = ['serve', 'consume', 'migrate', 'rls', 'compact', 'status', 'typegen']
export const RUNNERS: readonly CommandName[] = ['serve', 'consume']

/** A configuration problem; the message names the setting (flag, variable or config field) and what is wrong. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}
