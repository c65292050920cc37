// Wire records from COPY text (see packages/server/src/snapshot/convert.ts, which lays out memory and calls `convert`).
// Every address is an absolute offset into this module's memory; nothing here allocates.

const TAB: u32 = 0x09
const NEWLINE: u32 = 0x0a
const BACKSLASH: u32 = 0x5c
const QUOTE: u32 = 0x22

const ID_KEY = memory.data<u8>([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a]) // {"id":
const UPDATED_KEY = memory.data<u8>([0x2c, 0x22, 0x75, 0x70, 0x64, 0x61, 0x74, 0x65, 0x64, 0x5f, 0x61, 0x74, 0x22, 0x3a]) // ,"updated_at":
const NULL = memory.data<u8>([0x6e, 0x75, 0x6c, 0x6c])
const TRUE = memory.data<u8>([0x74, 0x72, 0x75, 0x65])
const FALSE = memory.data<u8>([0x66, 0x61, 0x6c, 0x73, 0x65])
// "0001-01-01T00:00:00Z"
const ZERO_TIMESTAMP = memory.data<u8>([0x22, 0x30, 0x30, 0x30, 0x31, 0x2d, 0x30, 0x31, 0x2d, 0x30, 0x31, 0x54, 0x30, 0x30, 0x3a, 0x30, 0x30, 0x3a, 0x30, 0x30, 0x5a, 0x22])
const HEX = memory.data<u8>([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66])

// Kinds: as convert.ts's `Kind`.
const INT: u32 = 0
const FLOAT: u32 = 1
const BOOL: u32 = 2
const STR: u32 = 3
const QUOTED: u32 = 4
const JSON: u32 = 5
const TS: u32 = 6
const TSTZ: u32 = 7
/** The record's id again: its JSON string as written at the record's start (no field of its own in the text). */
const ID_STRING: u32 = 8
/** The record's id again, without its quotes (an integer id). */
const ID_NUMBER: u32 = 9

/** Statuses of `convert`. */
const DONE: i32 = 0
const NEEDS_ROOM: i32 = 1
const BAD_COLUMNS: i32 = -1
const BACKSLASH_AT_END: i32 = -2
/** The stamp comes from the updated-at column (`stampColumn` ≥ 0) and a row's is not at offset +00. */
const NOT_UTC: i32 = -3

/** Where the field a `put…` function read ends (its tab or newline). */
let next: usize = 0
/** `{` and `[` met in JSON values of the current row, plus one. */
let opened: i32 = 0
/** A malformed-text status met inside a field, or DONE. */
let failed: i32 = DONE

/** Where `convert` stopped (NEEDS_ROOM) or ended: input position, output position, records written. */
export let stopP: usize = 0
export let stopO: usize = 0
export let stopRows: i32 = 0

export function heapBase(): usize {
  return __heap_base
}

@inline function at(p: usize): u32 {
  return <u32>load<u8>(p)
}

@inline function put(o: usize, from: usize, n: usize): usize {
  memory.copy(o, from, n)
  return o + n
}

function putVerbatim(p: usize, o: usize): usize {
  for (let b = at(p); b != TAB && b != NEWLINE; b = at(++p)) store<u8>(o++, <u8>b)
  next = p
  return o
}

function putQuoted(p: usize, o: usize): usize {
  store<u8>(o++, <u8>QUOTE)
  o = putVerbatim(p, o)
  store<u8>(o++, <u8>QUOTE)
  return o
}

/**
 * The byte a COPY text escape `\x` stands for (COPY TO writes \b \f \n \r \t \v and \\ only). A backslash before the
 * newline ending a row is not COPY text (`failed`): read on, the field's loop would pass the end of the text.
 */
@inline function unescaped(b: u32): u32 {
  if (b == NEWLINE) failed = BACKSLASH_AT_END
  if (b == 0x62) return 0x08
  if (b == 0x66) return 0x0c
  if (b == 0x6e) return 0x0a
  if (b == 0x72) return 0x0d
  if (b == 0x74) return 0x09
  if (b == 0x76) return 0x0b
  return b
}

function putJson(p: usize, o: usize): usize {
  for (let b = at(p); b != TAB && b != NEWLINE; b = at(++p)) {
    if (b == BACKSLASH) {
      b = unescaped(at(++p))
      if (failed != DONE) break
    } else if (b == 0x7b || b == 0x5b) opened++
    store<u8>(o++, <u8>b)
  }
  next = p
  return o
}

function putString(p: usize, o: usize): usize {
  store<u8>(o++, <u8>QUOTE)
  for (let b = at(p); b != TAB && b != NEWLINE; b = at(++p)) {
    if (b == BACKSLASH) {
      b = unescaped(at(++p))
      if (failed != DONE) break
    }
    if (b >= 0x20 && b != QUOTE && b != BACKSLASH) {
      store<u8>(o++, <u8>b)
      continue
    }
    store<u8>(o++, <u8>BACKSLASH)
    if (b == QUOTE || b == BACKSLASH) store<u8>(o++, <u8>b)
    else if (b == 0x08) store<u8>(o++, 0x62)
    else if (b == 0x0c) store<u8>(o++, 0x66)
    else if (b == 0x0a) store<u8>(o++, 0x6e)
    else if (b == 0x0d) store<u8>(o++, 0x72)
    else if (b == 0x09) store<u8>(o++, 0x74)
    else {
      store<u8>(o++, 0x75)
      store<u8>(o++, 0x30)
      store<u8>(o++, 0x30)
      store<u8>(o++, load<u8>(HEX + (b >> 4)))
      store<u8>(o++, load<u8>(HEX + (b & 15)))
    }
  }
  store<u8>(o++, <u8>QUOTE)
  next = p
  return o
}

/** True when the output `[from, o)` ends in " BC" (an era suffix). */
@inline function endsBc(from: usize, o: usize): bool {
  return o - from > 3 && at(o - 3) == 0x20 && at(o - 2) == 0x42 && at(o - 1) == 0x43
}

function putTimestamp(p: usize, o: usize, tz: bool): usize {
  store<u8>(o++, <u8>QUOTE)
  let b = at(p)
  for (; b != 0x20 && b != TAB && b != NEWLINE; b = at(++p)) store<u8>(o++, <u8>b)
  if (b == 0x20) {
    store<u8>(o++, 0x54) // T
    const time = o
    let sign: isize = -1
    for (b = at(++p); b != TAB && b != NEWLINE; b = at(++p)) {
      if ((b == 0x2b || b == 0x2d) && sign < 0) sign = <isize>o
      store<u8>(o++, <u8>b)
    }
    const bc = endsBc(time, o)
    const stop = bc ? o - 3 : o
    if (tz && sign >= 0 && <isize>stop - sign == 3) {
      if (bc) memory.copy(stop + 3, stop, o - stop)
      store<u8>(stop, 0x3a)
      store<u8>(stop + 1, 0x30)
      store<u8>(stop + 2, 0x30)
      o += 3
    }
  }
  store<u8>(o++, <u8>QUOTE)
  next = p
  return o
}

function putWireTimestamp(p: usize, o: usize): usize {
  const first = at(p)
  if (first == BACKSLASH || first == 0x69 || first == 0x2d) {
    while (at(p) != TAB && at(p) != NEWLINE) p++
    next = p
    return put(o, ZERO_TIMESTAMP, 22)
  }
  store<u8>(o++, <u8>QUOTE)
  const from = o
  let b = at(p)
  for (; b != 0x20 && b != TAB && b != NEWLINE; b = at(++p)) store<u8>(o++, <u8>b)
  if (b == 0x20) {
    store<u8>(o++, 0x54) // T
    for (b = at(++p); b != TAB && b != NEWLINE; b = at(++p)) store<u8>(o++, <u8>b)
  }
  if (endsBc(from, o)) o -= 3
  store<u8>(o++, 0x5a) // Z
  store<u8>(o++, <u8>QUOTE)
  next = p
  return o
}

/**
 * The wire `updated_at` from the updated-at column's own text at `p` (a timestamptz, DateStyle ISO): what
 * `putWireTimestamp` makes of `updated_at AT TIME ZONE 'UTC'`, which is that text without its offset when the
 * offset is +00. Any other offset: `failed` (NOT_UTC), the caller reads the rows again with the UTC column.
 */
function putColumnStamp(p: usize, o: usize): usize {
  const first = at(p)
  if (first == BACKSLASH || first == 0x69 || first == 0x2d) return put(o, ZERO_TIMESTAMP, 22)
  let end = p
  while (at(end) != TAB && at(end) != NEWLINE) end++
  const bc = end - p > 3 && at(end - 3) == 0x20 && at(end - 2) == 0x42 && at(end - 1) == 0x43
  const zone = bc ? end - 6 : end - 3
  if (zone <= p || at(zone) != 0x2b || at(zone + 1) != 0x30 || at(zone + 2) != 0x30) {
    failed = NOT_UTC
    return o
  }
  store<u8>(o++, <u8>QUOTE)
  for (; p < zone; p++) {
    const b = at(p)
    store<u8>(o++, b == 0x20 ? 0x54 : <u8>b) // the one space, between date and time: T
  }
  store<u8>(o++, 0x5a) // Z
  store<u8>(o++, <u8>QUOTE)
  return o
}

/** True when the JSON text `[a, b)` nests deeper than `max`. */
function deeperThan(a: usize, b: usize, max: i32): bool {
  let depth = 0
  for (let i = a; i < b; i++) {
    const c = at(i)
    if (c == QUOTE) {
      for (i++; i < b && at(i) != QUOTE; i++) if (at(i) == BACKSLASH) i++
    } else if (c == 0x7b || c == 0x5b) {
      if (++depth > max) return true
    } else if (c == 0x7d || c == 0x5d) depth--
  }
  return false
}

/** Where the next field starts, the field just read having ended with `delimiter`; 0 (and `failed`) when not. */
@inline function after(delimiter: u32): usize {
  if (failed != DONE) return 0
  if (at(next) != delimiter) {
    failed = BAD_COLUMNS
    return 0
  }
  return next + 1
}

/**
 * Converts the rows of `[p, end)` (COPY text, each row ending in a newline) into wire records at `o` (room up to
 * `outEnd`), record `rows` on. Plan at `plan`: `n` kind bytes, padded to 4, then per column a u32 offset (from `plan`) and a
 * u32 length of its key, then the table key's offset and length. Per record: four i32 offsets (relative to `outBase`) at
 * `offsets + 16 * row`, a deep flag at `deep + row`. The wire stamp is the row's last field, or with `stampColumn`
 * ≥ 0 that column's text (`putColumnStamp`). Stops before a row that might not fit (NEEDS_ROOM), or on
 * malformed text (a negative status); `stopP`, `stopO`, `stopRows` say where.
 */
export function convert(
  plan: usize,
  n: i32,
  p: usize,
  end: usize,
  outBase: usize,
  o: usize,
  outEnd: usize,
  offsets: usize,
  deep: usize,
  rows: i32,
  maxDepth: i32,
  stampColumn: i32,
): i32 {
  const keys = plan + <usize>((n + 3) & ~3)
  const tableKey = plan + <usize>load<u32>(keys + 8 * <usize>n)
  const tableKeyLen = load<u32>(keys + 8 * <usize>n + 4)
  let keyBytes: usize = tableKeyLen
  for (let c = 0; c < n; c++) keyBytes += load<u32>(keys + 8 * <usize>c + 4)
  // With the stamp taken from a column, the last column's field ends the row.
  let rowEnd: i32 = -1
  if (stampColumn >= 0) for (let c = 0; c < n; c++) if (at(plan + <usize>c) < ID_STRING) rowEnd = c
  failed = DONE
  let status = DONE
  while (p < end) {
    let nl = p
    while (at(nl) != NEWLINE) nl++
    if (o + (nl - p) * 6 + keyBytes + 1024 > outEnd) {
      status = NEEDS_ROOM
      break
    }
    const start = o
    o = put(o, ID_KEY, 6)
    o = putString(p, o)
    p = after(TAB)
    if (failed != DONE) break
    const idEnd = o
    o = put(o, tableKey, tableKeyLen)
    opened = 1
    let stampAt: usize = 0
    for (let c = 0; c < n; c++) {
      o = put(o, plan + <usize>load<u32>(keys + 8 * <usize>c), load<u32>(keys + 8 * <usize>c + 4))
      const kind = at(plan + <usize>c)
      if (kind >= ID_STRING) {
        // `{"id":` then the id's JSON string: all of it, or its text between the quotes.
        o = kind == ID_STRING ? put(o, start + 6, idEnd - start - 6) : put(o, start + 7, idEnd - start - 8)
        continue
      }
      if (c == stampColumn) stampAt = p
      if (at(p) == BACKSLASH && at(p + 1) == 0x4e && (at(p + 2) == TAB || at(p + 2) == NEWLINE)) {
        o = put(o, NULL, 4)
        next = p + 2
      } else {
        if (kind == INT) o = putVerbatim(p, o)
        else if (kind == FLOAT) {
          const f = at(p)
          if (f == 0x4e || f == 0x49 || (f == 0x2d && at(p + 1) == 0x49)) o = putQuoted(p, o)
          else o = putVerbatim(p, o)
        } else if (kind == BOOL) {
          o = at(p) == 0x74 ? put(o, TRUE, 4) : put(o, FALSE, 5)
          next = p + 1
        } else if (kind == STR) o = putString(p, o)
        else if (kind == QUOTED) o = putQuoted(p, o)
        else if (kind == JSON) o = putJson(p, o)
        else o = putTimestamp(p, o, kind == TSTZ)
      }
      p = after(c == rowEnd ? NEWLINE : TAB)
      if (failed != DONE) break
    }
    if (failed != DONE) break
    store<u8>(o++, 0x7d)
    const dataEnd = o
    o = put(o, UPDATED_KEY, 14)
    if (stampColumn < 0) {
      o = putWireTimestamp(p, o)
      p = after(NEWLINE)
    } else o = putColumnStamp(stampAt, o)
    if (failed != DONE) break
    store<u8>(o++, 0x7d)
    const slot = offsets + 16 * <usize>rows
    store<i32>(slot, <i32>(start - outBase))
    store<i32>(slot + 4, <i32>(idEnd - outBase))
    store<i32>(slot + 8, <i32>(dataEnd - outBase))
    store<i32>(slot + 12, <i32>(o - outBase))
    store<u8>(o++, 0x2c)
    store<u8>(deep + <usize>rows, opened > maxDepth && deeperThan(idEnd + tableKeyLen, dataEnd, maxDepth) ? 1 : 0)
    rows++
  }
  stopP = p
  stopO = o
  stopRows = rows
  return failed != DONE ? failed : status
}
