import { readFileSync } from 'node:fs'
import { SynchroError } from '@synchro/server'
import { compact } from './commands/compact.js'
import { consume } from './commands/consume.js'
import { docs } from './commands/docs.js'
import { migrate } from './commands/migrate.js'
import { rls } from './commands/rls.js'
import { serve } from './commands/serve.js'
import { status } from './commands/status.js'
import { token } from './commands/token.js'
import { typegen } from './commands/typegen.js'
import { loadSettings, type Settings } from './config.js'
import { StartupError } from './database.js'
import { createLogger, type Log } from './logger.js'
import { type CommandName, ConfigError, helpText, parseArgs } from './options/index.js'

const COMMAND_RUNNERS: Record<CommandName, (settings: Settings, log: Log) => Promise<void>> = {
  serve,
  consume,
  migrate,
  rls,
  compact,
  token,
  status,
  typegen,
  docs,
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Errors whose message is the whole story for the operator: no stack trace. */
function isOperatorError(err: unknown): err is Error {
  return err instanceof ConfigError || err instanceof StartupError || err instanceof SynchroError
}

/** Runs one synchrod command; resolves with the process exit code. */
export async function main(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let log: Log | undefined
  let daemon = false
  try {
    const args = parseArgs(argv)
    if (args.help) {
      process.stdout.write(helpText(args.command))
      return 0
    }
    if (args.version) {
      process.stdout.write(`synchrod ${version()}\n`)
      return 0
    }
    daemon = args.command === 'serve' || args.command === 'consume'
    // LOG_LEVEL is read before the config file so config errors are logged at the requested level.
    const requested = (args.flags.logLevel as string | undefined) || env.LOG_LEVEL || 'info'
    // An invalid level is reported by option validation below, through a logger that works.
    const level = LEVELS.has(requested) ? requested : 'info'
    log = createLogger(level, daemon ? 1 : 2)
    const settings = await loadSettings(args, env)
    if (settings.options.logLevel && settings.options.logLevel !== level) log.level = settings.options.logLevel
    await COMMAND_RUNNERS[args.command](settings, log)
    return 0
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (isOperatorError(err)) {
      // Daemons also log it as JSON (their log is what the platform collects); one-shot commands log to stderr
      // already, where the plain line below is enough.
      if (daemon) log?.fatal({ error: err.name }, message)
      process.stderr.write(`synchrod: ${message}\n`)
      return err instanceof ConfigError ? 2 : 1
    }
    log?.fatal({ err: { name: (err as Error)?.name, message, stack: (err as Error)?.stack } }, 'synchrod failed')
    process.stderr.write(`synchrod: ${message}\n`)
    return 1
  }
}

// Unexpected async errors must not leave a half-alive daemon: log and exit non-zero.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`synchrod: unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}\n`)
  process.exit(1)
})

const code = await main(process.argv.slice(2))
// Exit explicitly: pool sockets, timers of libraries (JWKS cache) or the embedded PostgreSQL child could otherwise
// keep a finished command alive.
process.exit(code)
