import { readFileSync } from 'node:fs'

/** Polls `fn` until it returns a truthy value; throws after `timeoutMs` with the last error. */
export async function poll<T>(
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  what = 'condition',
  everyMs = 50,
): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > until)
      throw new Error(`${what}: not met within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`)
    await sleep(everyMs)
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Nearest-rank percentile (0–100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

export function latencySummary(ms: readonly number[]) {
  const r = (x: number) => Math.round(x * 10) / 10
  return {
    n: ms.length,
    p50: r(percentile(ms, 50)),
    p95: r(percentile(ms, 95)),
    p99: r(percentile(ms, 99)),
    max: r(ms.length ? Math.max(...ms) : Number.NaN),
  }
}

/** Resident set size of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined
  } catch {
    return undefined
  }
}

/** Integer from the environment with a default. */
export function envInt(name: string, def: number): number {
  const v = process.env[name]
  return v !== undefined && v !== '' ? Number.parseInt(v, 10) : def
}

/** Seeded PRNG (mulberry32) for workloads outside fast-check. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)] as T
}

/** A UUID from the PRNG (v4 layout), so seeded runs reuse ids. */
export function seededUuid(r: () => number): string {
  const h = Array.from({ length: 32 }, () => Math.floor(r() * 16).toString(16))
  h[12] = '4'
  h[16] = '89ab'[Math.floor(r() * 4)] as string
  const s = h.join('')
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`
}
