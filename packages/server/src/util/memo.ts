/** The value cached in `m` for `k`, made by `make` on first use. */
export function memo<K, V>(m: { get(k: K): V | undefined; set(k: K, v: V): unknown }, k: K, make: () => V): V {
  let v = m.get(k)
  if (v === undefined) {
    v = make()
    m.set(k, v)
  }
  return v
}
