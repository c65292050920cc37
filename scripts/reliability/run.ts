// Full-size reliability runner: `npm run reliability` (node --import tsx --conditions=source scripts/reliability/run.ts).
// Sizes come from env vars (defaults = the full sizes documented in docs/reliability.md); RELIABILITY_ONLY=crash,load
// runs a subset. Writes scripts/reliability/results/<timestamp>.json and exits 1 when any scenario has violations.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runnerRoot } from '../../tests/reliability/lib/db.js'
import { envInt } from '../../tests/reliability/lib/util.js'
import { runAbuse } from '../../tests/reliability/scenarios/abuse.js'
import { runAccess } from '../../tests/reliability/scenarios/access.js'
import { runClientAborts } from '../../tests/reliability/scenarios/client-aborts.js'
import { runCompactionPinning } from '../../tests/reliability/scenarios/compaction-pinning.js'
import { runConfigHygiene } from '../../tests/reliability/scenarios/config-hygiene.js'
import { runConvergence } from '../../tests/reliability/scenarios/convergence.js'
import { runCrash } from '../../tests/reliability/scenarios/crash.js'
import { runDbRestart } from '../../tests/reliability/scenarios/db-restart.js'
import { runDeepJson } from '../../tests/reliability/scenarios/deep-json.js'
import { runEmbeddedSupervision } from '../../tests/reliability/scenarios/embedded-supervision.js'
import { runHostile } from '../../tests/reliability/scenarios/hostile.js'
import { runLibrarySetup } from '../../tests/reliability/scenarios/library-setup.js'
import { runLoad } from '../../tests/reliability/scenarios/load.js'
import { runLogHygiene } from '../../tests/reliability/scenarios/log-hygiene.js'
import { runScaleOut } from '../../tests/reliability/scenarios/scale-out.js'
import { runStall } from '../../tests/reliability/scenarios/stall.js'

const seed = envInt('RELIABILITY_SEED', 20261126)
const only = (process.env.RELIABILITY_ONLY ?? '').split(',').filter(Boolean)
const wanted = (name: string) => only.length === 0 || only.includes(name)
const log = (line: string) => console.log(`  ${line}`)

async function main() {
  const root = await runnerRoot()
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: root.version,
  }
  console.log(`reliability run, seed ${seed}, PostgreSQL ${root.version}, ${machine.cpus} cores`)
  const results: Record<string, unknown> = {}
  let failed = false
  const scenario = async (name: string, fn: () => Promise<{ violations: string[] }>) => {
    if (!wanted(name)) return
    console.log(`\n== ${name}`)
    const t0 = Date.now()
    try {
      const r = await fn()
      results[name] = r
      if (r.violations.length) failed = true
      console.log(JSON.stringify({ ...r, violations: r.violations.slice(0, 20) }, null, 2))
    } catch (err) {
      failed = true
      results[name] = { error: String((err as Error).stack ?? err).slice(0, 4000) }
      console.log(`  FAILED: ${String((err as Error).message).slice(0, 2000)}`)
    }
    console.log(`  (${Math.round((Date.now() - t0) / 1000)} s)`)
  }
  try {
    await scenario('crash', () =>
      runCrash({
        root: root.url,
        kills: envInt('RELIABILITY_CRASH_KILLS', 50),
        pushers: envInt('RELIABILITY_CRASH_PUSHERS', 4),
        sdkClients: envInt('RELIABILITY_CRASH_SDK_CLIENTS', 3),
        seed,
        log,
      }),
    )
    await scenario('scale-out', () =>
      runScaleOut({
        root: root.url,
        instances: envInt('RELIABILITY_SCALE_INSTANCES', 3),
        probes: envInt('RELIABILITY_SCALE_PROBES', 20),
        kills: envInt('RELIABILITY_SCALE_KILLS', 5),
        takeoverLimitMs: envInt('RELIABILITY_SCALE_TAKEOVER_MS', 5000),
        seed,
        log,
      }),
    )
    for (const mode of ['library', 'daemon'] as const) {
      await scenario(`db-restart-${mode}`, () =>
        runDbRestart({
          mode,
          restarts: envInt('RELIABILITY_RESTARTS', 5),
          downMs: envInt('RELIABILITY_RESTART_DOWN_MS', 5000),
          clients: envInt('RELIABILITY_RESTART_CLIENTS', 8),
          sdkClients: envInt('RELIABILITY_RESTART_SDK_CLIENTS', 2),
          seed,
          log,
        }),
      )
    }
    await scenario('convergence', () =>
      runConvergence({
        root: root.url,
        clients: envInt('RELIABILITY_CONVERGENCE_CLIENTS', 6),
        users: envInt('RELIABILITY_CONVERGENCE_USERS', 2),
        rounds: envInt('RELIABILITY_CONVERGENCE_ROUNDS', 400),
        runs: envInt('RELIABILITY_CONVERGENCE_RUNS', 5),
        seed,
        log,
      }),
    )
    await scenario('hostile', () =>
      runHostile({ root: root.url, bodies: envInt('RELIABILITY_HOSTILE_BODIES', 5000), seed }),
    )
    await scenario('access', () => runAccess({ root: root.url }))
    await scenario('load', () =>
      runLoad({
        root: root.url,
        clients: envInt('RELIABILITY_LOAD_CLIENTS', 200),
        seconds: envInt('RELIABILITY_LOAD_SECONDS', 60),
        log,
      }),
    )
    await scenario('config-hygiene', () => runConfigHygiene({ root: root.url }))
    await scenario('log-hygiene', () => runLogHygiene())
    await scenario('embedded-supervision', () =>
      runEmbeddedSupervision({ kills: envInt('RELIABILITY_EMBEDDED_KILLS', 10), log }),
    )
    await scenario('client-aborts', () =>
      runClientAborts({ root: root.url, aborts: envInt('RELIABILITY_CLIENT_ABORTS', 1000) }),
    )
    await scenario('library-setup', () => runLibrarySetup({ root: root.url }))
    await scenario('stall', () =>
      runStall({
        stallMs: envInt('RELIABILITY_STALL_MS', 30_000),
        clients: envInt('RELIABILITY_STALL_CLIENTS', 8),
        deadlineMs: envInt('RELIABILITY_STALL_DEADLINE_MS', 5_000),
        log,
      }),
    )
    await scenario('deep-json', () => runDeepJson({ root: root.url, storedRows: envInt('RELIABILITY_DEEP_ROWS', 20) }))
    await scenario('compaction-pinning', () =>
      runCompactionPinning({
        root: root.url,
        healthyClients: envInt('RELIABILITY_PINNING_CLIENTS', 8),
        staleMs: envInt('RELIABILITY_PINNING_STALE_MS', 5_000),
        durationMs: envInt('RELIABILITY_PINNING_MS', 30_000),
        compactEveryMs: 500,
        log,
      }),
    )
    await scenario('abuse', () =>
      runAbuse({ root: root.url, pushes: envInt('RELIABILITY_ABUSE_PUSHES', 40), healthzLimitMs: 1_000, log }),
    )
  } finally {
    await root.stop()
  }
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results')
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `reliability-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), seed, machine, results }, null, 2)}\n`)
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`)
  process.exit(failed ? 1 : 0)
}

await main()
