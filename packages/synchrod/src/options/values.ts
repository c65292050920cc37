/** One setting's raw value (flag, variable or config field) → its typed value, or a ConfigError naming the source. */
import { ConfigError, type OptionSpec } from './spec.js'

export function parseBoolean(raw: string, label: string): boolean {
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false
  throw new ConfigError(`${label}: expected true or false, got ${JSON.stringify(raw)}`)
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `500`, `500ms`, `30s`, `15m`, `1h`, `7d` → milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim())
  if (!m) return undefined
  const n = Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number)
  return Number.isFinite(n) ? Math.round(n) : undefined
}

export function convert(spec: OptionSpec, raw: unknown, label: string): string | number | boolean {
  const secretSafe = (v: unknown) => (spec.secret ? '(hidden)' : JSON.stringify(v))
  switch (spec.kind) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw
      if (typeof raw === 'string') return parseBoolean(raw, label)
      throw new ConfigError(`${label}: expected true or false, got ${secretSafe(raw)}`)
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN
      if (!Number.isSafeInteger(n) || n < 0)
        throw new ConfigError(`${label}: expected a non-negative integer, got ${secretSafe(raw)}`)
      return n
    }
    case 'duration': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseDuration(raw) : undefined
      if (n === undefined || !Number.isSafeInteger(n) || n < 0) {
        throw new ConfigError(`${label}: expected a duration in ms or like 30s, 15m, 1h, 7d, got ${secretSafe(raw)}`)
      }
      return n
    }
    case 'string': {
      if (typeof raw !== 'string') throw new ConfigError(`${label}: expected a string, got ${secretSafe(raw)}`)
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new ConfigError(`${label}: must be one of ${spec.choices.join(', ')}; got ${secretSafe(raw)}`)
      }
      if (spec.pattern && !spec.pattern.test(raw)) {
        throw new ConfigError(`${label}: expected a value like ${spec.example ?? spec.pattern}, got ${secretSafe(raw)}`)
      }
      return raw
    }
  }
}

export function checkLength(spec: OptionSpec, value: string, label: string): void {
  if (spec.nonBlank && value.trim() === '') {
    throw new ConfigError(`${label} is set but empty: give a value, or leave it unset`)
  }
  const bytes = Buffer.byteLength(value, 'utf8')
  if (spec.minBytes !== undefined && bytes < spec.minBytes) {
    throw new ConfigError(
      `${label} is too short (${bytes} bytes): use at least ${spec.minBytes} random bytes (RFC 7518 §3.2), ` +
        'e.g. the output of `openssl rand -hex 32`',
    )
  }
}
