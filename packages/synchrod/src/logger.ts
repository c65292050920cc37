import pino from 'pino'

export type Log = pino.Logger

/**
 * JSON log lines (pino). Daemons log to stdout; one-shot commands log to stderr so their stdout stays clean output.
 * Synchronous writes: a log line written just before `process.exit` is never lost (pino's async destination
 * throws "sonic boom is not ready yet" in that case).
 * Secrets never reach the logger: settings are logged through `safeSettings`, SQL parameters and row data never.
 */
export function createLogger(level: string, fd: 1 | 2 = 1): Log {
  return pino(
    {
      level,
      base: { service: 'synchrod', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Belt and braces: should an object with these keys ever be logged, pino masks them.
      redact: {
        paths: ['databaseUrl', 'replicationUrl', 'jwtSecret', 'password', 'authorization', '*.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination({ dest: fd, sync: true }),
  )
}
