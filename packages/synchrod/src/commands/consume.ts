import type { Settings } from '../config.js'
import { runDaemon } from '../daemon.js'
import type { Log } from '../logger.js'

/**
 * `synchrod consume`: only the WAL consumer (leader-elected, so several may run) plus /healthz and /metrics, for
 * deployments that scale the HTTP tier separately (`synchrod serve --no-consumer`).
 */
export function consume(settings: Settings, log: Log): Promise<void> {
  return runDaemon(settings, 'consume', log)
}
