import { COMMANDS, type CommandName, type OptionSpec } from './spec.js'
import { OPTIONS } from './table/index.js'

/** Options of one command, in table order. */
export function optionsFor(command: CommandName): OptionSpec[] {
  return (OPTIONS as readonly OptionSpec[]).filter((o) => o.commands.includes(command))
}

export function defaultOf(o: OptionSpec): string {
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
