import type { ParsedArgs } from './args.js'
import { getPath } from './config-file.js'
import type { CommandName, OptionSpec } from './spec.js'
import { OPTIONS, type OptionName, type Options } from './table/index.js'
import { checkLength, convert } from './values.js'

/** Where a value came from, as the user would write it: `--listen`, `LISTEN_ADDR`, `config.json: minClientVersion`. */
function sourceLabel(spec: OptionSpec, from: 'flag' | 'env' | 'config', configPath?: string): string {
  if (from === 'flag') return `--${spec.flag}`
  if (from === 'env') return spec.env as string
  return `config file ${configPath ?? ''}: ${spec.config}`
}

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
