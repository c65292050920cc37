import type { Settings } from '../config.js'
import { runDaemon } from '../daemon.js'
import type { Log } from '../logger.js'

/** `synchrod serve`: the sync API, /healthz, /metrics and (unless --no-consumer) the leader-elected WAL consumer. */
export function serve(settings: Settings, log: Log): Promise<void> {
  return runDaemon(settings, 'serve', log)
}
