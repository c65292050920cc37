import { COMMANDS, type CommandName, ConfigError, type OptionSpec } from './spec.js'
import { OPTIONS, type OptionName } from './table/index.js'
import { parseBoolean } from './values.js'

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
