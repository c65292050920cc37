/** A WAL position as PostgreSQL prints it: two hex halves, `X/Y`. */
export type LsnText = string

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** Parses `X/Y` into a 64-bit integer (what `sync_wal_position.confirmed_lsn` stores). */
export function lsnToBigint(lsn: LsnText): bigint {
  const m = LSN_RE.exec(lsn.trim())
  if (!m) throw new TypeError(`invalid LSN ${JSON.stringify(lsn)}`)
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

/** Formats a 64-bit LSN the way PostgreSQL does (`16/B374D848`, upper-case hex, no padding). */
export function bigintToLsn(lsn: bigint): LsnText {
  if (lsn < 0n || lsn > 0xffff_ffff_ffff_ffffn) throw new RangeError(`LSN out of range: ${lsn}`)
  const hi = (lsn >> 32n).toString(16).toUpperCase()
  const lo = (lsn & 0xffff_ffffn).toString(16).toUpperCase()
  return `${hi}/${lo}`
}

/** Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01), for standby status timestamps. */
export const PG_EPOCH_OFFSET_US = 946_684_800_000_000n

/** Now, as PostgreSQL's wire timestamp (µs since 2000-01-01). */
export function pgNowMicros(): bigint {
  return BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_US
}

/** The larger of two LSNs (Math.max does not take bigints). */
export function maxLsn(a: bigint, b: bigint): bigint {
  return a > b ? a : b
}
