/** SQL values across `page.evaluate` (JSON only): bigints and byte arrays travel tagged. */
export function encode(v: unknown): unknown {
  if (typeof v === 'bigint') return { $bigint: v.toString() }
  if (v instanceof Uint8Array) return { $bytes: Array.from(v) }
  if (Array.isArray(v)) return v.map(encode)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]))
  return v
}

export function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode)
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    if (typeof o.$bigint === 'string') return BigInt(o.$bigint)
    if (Array.isArray(o.$bytes)) return new Uint8Array(o.$bytes as number[])
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x)]))
  }
  return v
}
