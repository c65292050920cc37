/**
 * synchrod's settings: one table of options (`table/`), read from flags (`args.ts`), environment variables and the
 * config file (`resolve.ts`, `values.ts`, `config-file.ts`), and rendered as `--help` (`help.ts`) and
 * docs/configuration.md (`docs.ts`).
 */
export { type ParsedArgs, parseArgs } from './args.js'
export { CONFIG_KEYS, NESTED_CONFIG_KEYS, TABLE_FIELDS } from './config-file.js'
export { configurationMarkdown } from './docs.js'
export { helpText, optionsFor } from './help.js'
export { resolveOptions } from './resolve.js'
export { COMMANDS, type CommandName, ConfigError, type OptionSpec } from './spec.js'
export { OPTIONS, type OptionName, type Options } from './table/index.js'
export { parseDuration } from './values.js'
