/** Parses `MAJOR.MINOR.PATCH` (leading `v` stripped, pre-release and build ignored); undefined when unparseable. */
export function parseVersion(v: string): [number, number, number] | undefined {
  let s = v.trim()
  if (s.startsWith('v')) s = s.slice(1)
  s = s.split('+')[0] ?? ''
  s = s.split('-')[0] ?? ''
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(s)
  if (!m) return undefined
  return [Number(m[1]), Number(m[2]), Number(m[3])]
}

/** True when `version` is unparseable or lower than `minimum`. */
export function belowMinimum(version: string, minimum: string): boolean {
  const a = parseVersion(version)
  const b = parseVersion(minimum)
  if (!b) throw new Error(`invalid minimum client version ${JSON.stringify(minimum)}`)
  if (!a) return true
  for (let i = 0; i < 3; i++) {
    const x = a[i] as number
    const y = b[i] as number
    if (x !== y) return x < y
  }
  return false
}
