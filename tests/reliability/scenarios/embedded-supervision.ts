// 9. Embedded PostgreSQL: secrets and supervision. The daemon binary without DATABASE_URL, on a fresh data folder:
// its superuser password is random per data folder (the old fixed one is refused, nothing is trusted) and every file
// holding it is mode 0600; its postmaster is SIGKILLed repeatedly under a pushing client and the daemon must
// restart it (with backoff) and serve again with every acknowledged write kept; with restarts off
// (`--embedded-restarts 0`) the daemon must exit non-zero instead of answering 503 forever.
import { randomUUID } from 'node:crypto'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type Daemon, startDaemon } from '@synchro/test-harness/synchrod'
import pg from 'pg'
import { stopGracefully } from '../lib/daemon.js'
import { call } from '../lib/http.js'
import { RawClient } from '../lib/raw-client.js'
import { latencySummary, poll } from '../lib/util.js'

export interface EmbeddedSupervisionOptions {
  kills: number
  log?: (line: string) => void
}

export interface EmbeddedSupervisionReport {
  kills: number
  /** From SIGKILL of the postmaster to /healthz answering 200 again. */
  recoveryMs: ReturnType<typeof latencySummary>
  acknowledged: number
  lostAcknowledged: number
  statuses: Record<string, number>
  fileModes: Record<string, string>
  exitWithoutRestarts: number | null
  violations: string[]
}

/** Documented in docs/deployment.md (a literal, so this scenario also runs against older daemons). */
const PASSWORD_FILE = 'synchro-superuser-password'

function mode(file: string): string {
  try {
    return (statSync(file).mode & 0o777).toString(8)
  } catch {
    return 'missing'
  }
}

async function refused(url: string, password: string): Promise<string | undefined> {
  const u = new URL(url)
  const c = new pg.Client({ host: u.hostname, port: Number(u.port), user: 'postgres', password, database: 'postgres' })
  c.on('error', () => {})
  try {
    await c.connect()
    await c.end()
    return undefined
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message
  }
}

function postmasterPid(dataDir: string): number {
  return Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
}

export async function runEmbeddedSupervision(o: EmbeddedSupervisionOptions): Promise<EmbeddedSupervisionReport> {
  const log = o.log ?? (() => {})
  const violations: string[] = []
  const dir = mkdtempSync(path.join(tmpdir(), 'synchro-rel-embedded-'))
  chmodSync(dir, 0o755) // as root, PostgreSQL runs as `postgres`, which must reach the data folder
  const dataDir = path.join(dir, '.synchro', 'pgdata')
  const env = { SYNCHRO_DATA_DIR: dataDir, LISTEN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info' }
  const statuses: Record<string, number> = {}
  const recovery: number[] = []
  const acked = new Set<string>()
  const fileModes: Record<string, string> = {}
  let daemon: Daemon | undefined
  let url = ''
  try {
    daemon = await startDaemon(['--demo'], { cwd: dir, timeoutMs: 120_000, env })
    // 1. Secrets: a random password per data folder, files readable by their owner only.
    const state = path.join(dir, '.synchro', 'postgres.json')
    url = (JSON.parse(readFileSync(state, 'utf8')) as { url: string }).url
    fileModes['postgres.json'] = mode(state)
    fileModes[PASSWORD_FILE] = mode(path.join(dataDir, PASSWORD_FILE))
    for (const [file, m] of Object.entries(fileModes)) if (m !== '600') violations.push(`${file} has mode ${m}`)
    const password = decodeURIComponent(new URL(url).password)
    if (password.length < 32 || password === 'synchro') violations.push('the superuser password is not random')
    const code = await refused(url, 'synchro')
    if (code !== '28P01') violations.push(`the old fixed password was not refused (${code ?? 'connected'})`)
    const hba = readFileSync(path.join(dataDir, 'pg_hba.conf'), 'utf8')
    if (hba.split('\n').some((l) => !l.trim().startsWith('#') && /\btrust\b/.test(l))) {
      violations.push('pg_hba.conf trusts connections without a password')
    }
    if (await refused(url, password)) violations.push('the recorded password does not work')

    // 2. Kill the postmaster under a pushing client; the daemon must bring it back.
    const d = daemon
    const client = new RawClient(() => d.url, randomUUID(), undefined, 20_000)
    if (!(await client.bootstrap())) violations.push('bootstrap failed')
    let pushing = true
    const pusher = (async () => {
      while (pushing) {
        const id = randomUUID()
        try {
          const a = await client.push([
            {
              id,
              table_name: 'orders',
              operation: 'create',
              data: { ship_address: 'x' },
              client_updated_at: new Date().toISOString(),
            },
          ])
          statuses[a.status] = (statuses[a.status] ?? 0) + 1
          if (a.status === 200 && a.body.accepted?.[0]?.status === 'applied') acked.add(id)
          if (a.status >= 500 && a.status !== 503) violations.push(`push answered ${a.status}`)
        } catch {
          statuses['no answer'] = (statuses['no answer'] ?? 0) + 1
        }
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    for (let k = 0; k < o.kills; k++) {
      const before = acked.size
      await poll(() => acked.size > before, 30_000, 'a push acknowledged before the kill')
      const killed = performance.now()
      process.kill(postmasterPid(dataDir), 'SIGKILL')
      // /healthz turns 503 first (the pool notices), then 200 once PostgreSQL is back.
      await poll(async () => (await call(d.url, 'GET', '/healthz', { timeoutMs: 5_000 })).status === 503, 30_000, '503')
      await poll(async () => (await call(d.url, 'GET', '/healthz', { timeoutMs: 5_000 })).status === 200, 60_000, '200')
      recovery.push(performance.now() - killed)
      log(`kill ${k + 1}: healthy again after ${Math.round(recovery.at(-1) as number)} ms`)
    }
    const after = acked.size
    await poll(() => acked.size > after, 30_000, 'a push acknowledged after the last restart')
    pushing = false
    await pusher
    if (d.proc.exitCode !== null) violations.push(`the daemon exited (${d.proc.exitCode})`)
    if (!/embedded PostgreSQL restarted/.test(d.output())) violations.push('no "restarted" log line')
  } catch (err) {
    violations.push(`run failed: ${String(err).slice(0, 500)}`)
  } finally {
    if (daemon) await stopGracefully(daemon)
  }
  // Every acknowledged write is in the table (read after the daemon stopped: start PostgreSQL again through it).
  let lost = 0
  let exitWithoutRestarts: number | null = null
  try {
    const again = await startDaemon(['--demo', '--embedded-restarts', '0'], { cwd: dir, timeoutMs: 120_000, env })
    const url2 = (JSON.parse(readFileSync(path.join(dir, '.synchro', 'postgres.json'), 'utf8')) as { url: string }).url
    if (new URL(url2).password !== new URL(url).password) {
      violations.push('the password changed across restarts of the same data folder')
    }
    const pool = new pg.Pool({ connectionString: url2, max: 1 })
    const { rows } = await pool.query<{ id: string }>('SELECT id::text FROM orders WHERE id = ANY($1::uuid[])', [
      [...acked],
    ])
    await pool.end()
    lost = acked.size - rows.length
    if (lost > 0) violations.push(`${lost} acknowledged writes lost`)
    // 3. Restarts off: a dead PostgreSQL ends the daemon with a non-zero exit.
    process.kill(postmasterPid(dataDir), 'SIGKILL')
    const exit = await Promise.race([again.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))])
    exitWithoutRestarts = exit ? exit.code : null
    if (!exit) {
      again.kill()
      violations.push('with --embedded-restarts 0 the daemon kept running after PostgreSQL died')
    } else if (exit.code === 0 || exit.code === null) violations.push(`exit code ${exit.code} after PostgreSQL died`)
  } catch (err) {
    violations.push(`check run failed: ${String(err).slice(0, 500)}`)
  }
  rmSync(dir, { recursive: true, force: true })
  return {
    kills: o.kills,
    recoveryMs: latencySummary(recovery),
    acknowledged: acked.size,
    lostAcknowledged: lost,
    statuses,
    fileModes,
    exitWithoutRestarts,
    violations,
  }
}
