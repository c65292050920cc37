/**
 * Every synchrod setting, in one table. The table drives argument parsing, environment variables, config-file keys,
 * precedence (flag > env > config file > default), validation, `--help` and docs/configuration.md, so a setting
 * added here shows up everywhere at once. Its rows are kept by concern in the files next to this one.
 */
import type { Kind, OptionSpec } from '../spec.js'
import { COMMAND_OPTIONS } from './commands.js'
import { DATABASE_OPTIONS } from './database.js'
import { LIMIT_OPTIONS } from './limits.js'
import { SERVER_OPTIONS } from './server.js'
import { SYNC_OPTIONS } from './sync.js'

/** The table. Order = order in --help and the docs. */
export const OPTIONS = [
  ...DATABASE_OPTIONS,
  ...SERVER_OPTIONS,
  ...SYNC_OPTIONS,
  ...LIMIT_OPTIONS,
  ...COMMAND_OPTIONS,
] as const satisfies readonly OptionSpec[]

type Spec = (typeof OPTIONS)[number]
type ValueOf<K extends Kind> = K extends 'boolean' ? boolean : K extends 'string' ? string : number
/** Resolved settings: options with a default are always set. */
export type Options = {
  [S in Spec as S['name']]: S extends { default: unknown } ? ValueOf<S['kind']> : ValueOf<S['kind']> | undefined
}
export type OptionName = keyof Options
