/**
 * Lossless JSON for the wire. `JSON.parse` turns every number into a double: a PostgreSQL `bigint` above 2^53 or a
 * `numeric`/jsonb number with more than 15 significant digits silently changes value. Both sides of the protocol
 * parse and render bodies here instead, so JSON numbers stay JSON numbers on the wire and keep their exact value:
 *
 * - an integer literal that is not a safe integer parses to a `bigint`;
 * - any other literal a double cannot hold exactly (more than 15 significant digits, outside the normal double
 *   range) parses to a {@link JsonDecimal} carrying the literal text;
 * - everything else parses exactly as `JSON.parse` would.
 *
 * Own code rather than a library: the client SDK must stay free of runtime dependencies, the parser is small, and a
 * fast path hands every text without long digit runs (nearly all of them) to the native `JSON.parse`.
 */

/** A JSON number a double cannot hold exactly, kept as its literal text (e.g. a 40-digit `numeric`). */
export class JsonDecimal {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text
  }

  /** Plain `JSON.stringify` would have to round it: it refuses, like it does for a bigint. */
  toJSON(): unknown {
    if (rendering > 0) return this
    throw new TypeError(`JsonDecimal ${this.text}: serialize with stringifyJsonLossless`)
  }
}

export interface ParseJsonOptions {
  /** Parse the first JSON value and ignore what follows it (the protocol reads request bodies that way). */
  firstValueOnly?: boolean
}

/**
 * A number token (at the start or after `:`, `[` or `,`) with 16 or more digits, or with a 3-digit exponent: only
 * such a literal can leave a double inexact (DBL_DIG = 15; exponents below 100 stay in the normal range). Matches
 * inside strings are harmless: they only send the text through the exact parser.
 */
const MAY_LOSE = /(?:^|[:[,])\s*-?(?:\d\.?){16}|(?:^|[:[,])\s*-?[\d.]+[eE][+-]?\d{3}/

/**
 * Parses JSON text without rounding any number (see the module comment). Throws a SyntaxError on invalid JSON,
 * including trailing content unless `firstValueOnly`. The one JSON entry point for request and response bodies.
 */
export function parseJsonLossless(text: string, options: ParseJsonOptions = {}): unknown {
  if (!MAY_LOSE.test(text)) {
    if (!options.firstValueOnly) return JSON.parse(text)
    try {
      return JSON.parse(text)
    } catch (err) {
      // JSON.parse names where trailing content starts; the prefix is the first value.
      const m = /after JSON at position (\d+)/.exec((err as Error).message)
      if (!m) throw err
      return JSON.parse(text.slice(0, Number(m[1])))
    }
  }
  const p = new Parser(text)
  const value = p.value()
  if (!options.firstValueOnly) p.end()
  return value
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y
const WS = /[ \t\n\r]*/y
/** A string without escapes or control characters: its text is the slice between the quotes. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters in strings; they must fall through to the validating path.
const PLAIN_STRING = /"[^"\\\u0000-\u001f]*"/y
const MIN_NORMAL = 2.2250738585072014e-308

/** A number literal → number when a double holds it exactly, bigint for integers, JsonDecimal otherwise. */
export function numberFromLiteral(lit: string, isInteger: boolean): number | bigint | JsonDecimal {
  const n = Number(lit)
  if (isInteger) return Number.isSafeInteger(n) ? n : BigInt(lit)
  const mantissa = lit.replace(/^-/, '').replace(/[eE].*$/, '')
  const digits = mantissa.replace('.', '').replace(/^0+/, '').replace(/0+$/, '')
  if (digits.length === 0) return n
  // DBL_DIG: every decimal of at most 15 significant digits in the normal range survives the round trip.
  if (digits.length <= 15 && Number.isFinite(n) && Math.abs(n) >= MIN_NORMAL) return n
  return new JsonDecimal(lit)
}

class Parser {
  private i = 0
  constructor(private readonly s: string) {}

  private fail(what: string): never {
    throw new SyntaxError(`${what} in JSON at position ${this.i}`)
  }

  private ws(): void {
    const c = this.s.charCodeAt(this.i)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return
    WS.lastIndex = this.i
    WS.exec(this.s)
    this.i = WS.lastIndex
  }

  end(): void {
    this.ws()
    if (this.i < this.s.length) this.fail('Unexpected non-whitespace character after JSON')
  }

  value(): unknown {
    this.ws()
    const c = this.s.charCodeAt(this.i)
    if (c === 0x7b) return this.object()
    if (c === 0x5b) return this.array()
    if (c === 0x22) return this.string()
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number()
    for (const [word, v] of LITERALS) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length
        return v
      }
    }
    return this.fail(this.i >= this.s.length ? 'Unexpected end' : 'Unexpected token')
  }

  private object(): { [key: string]: unknown } {
    const out: { [key: string]: unknown } = {}
    this.i++
    this.ws()
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++
      return out
    }
    for (;;) {
      this.ws()
      if (this.s.charCodeAt(this.i) !== 0x22) this.fail('Expected property name')
      const key = this.string()
      this.ws()
      if (this.s.charCodeAt(this.i) !== 0x3a) this.fail("Expected ':'")
      this.i++
      // defineProperty: a "__proto__" key is data, as with JSON.parse.
      Object.defineProperty(out, key, { value: this.value(), enumerable: true, writable: true, configurable: true })
      this.ws()
      const c = this.s.charCodeAt(this.i++)
      if (c === 0x7d) return out
      if (c !== 0x2c) this.fail("Expected ',' or '}'")
    }
  }

  private array(): unknown[] {
    const out: unknown[] = []
    this.i++
    this.ws()
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++
      return out
    }
    for (;;) {
      out.push(this.value())
      this.ws()
      const c = this.s.charCodeAt(this.i++)
      if (c === 0x5d) return out
      if (c !== 0x2c) this.fail("Expected ',' or ']'")
    }
  }

  private string(): string {
    const start = this.i
    PLAIN_STRING.lastIndex = start
    if (PLAIN_STRING.test(this.s)) {
      this.i = PLAIN_STRING.lastIndex
      return this.s.slice(start + 1, this.i - 1)
    }
    let j = start + 1
    for (;;) {
      j = this.s.indexOf('"', j)
      if (j < 0) this.fail('Unterminated string')
      let k = j - 1
      while (this.s.charCodeAt(k) === 0x5c) k--
      if ((j - 1 - k) % 2 === 0) break
      j++
    }
    this.i = j + 1
    // The native parser validates escapes and control characters of the literal.
    return JSON.parse(this.s.slice(start, j + 1)) as string
  }

  private number(): number | bigint | JsonDecimal {
    NUMBER.lastIndex = this.i
    const m = NUMBER.exec(this.s)
    if (!m) return this.fail('Invalid number')
    this.i = NUMBER.lastIndex
    return numberFromLiteral(m[0], m[1] === undefined && m[2] === undefined)
  }
}

const LITERALS: readonly [string, unknown][] = [
  ['true', true],
  ['false', false],
  ['null', null],
]

/** >0 while stringifyJsonLossless runs: JsonDecimal.toJSON lets itself through to the replacer. */
let rendering = 0

/**
 * `JSON.stringify` that renders bigints and JsonDecimals as exact JSON numbers. Values without them take the native
 * path unchanged (native stringify throws on both, which is how they are detected).
 */
export function stringifyJsonLossless(value: unknown): string {
  try {
    return JSON.stringify(value)
  } catch (err) {
    if (!(err instanceof TypeError)) throw err
  }
  const nonce = `synchro-exact-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}-`
  const raw: string[] = []
  rendering++
  let out: string
  try {
    out = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return nonce + (raw.push(v.toString()) - 1)
      if (v instanceof JsonDecimal) return nonce + (raw.push(v.text) - 1)
      return v
    })
  } finally {
    rendering--
  }
  if (raw.length === 0) return out
  return out.replace(new RegExp(`"${nonce}(\\d+)"`, 'g'), (_m, i: string) => raw[Number(i)] as string)
}
