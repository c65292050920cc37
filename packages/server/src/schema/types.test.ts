import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { defaultKind, logicalTypeOf, normaliseDefault, sqliteDefault } from './types.js'

describe('§2.4 default translation', () => {
  it.each([
    ["''::text", "''"],
    ["'pending'::order_status", "'pending'"],
    ['(true)::boolean', '1'],
    ["'{}'::text[]", "'{}'"],
    ["'{}'::jsonb", "'{}'"],
    ['now()', 'CURRENT_TIMESTAMP'],
    ['CURRENT_TIMESTAMP', 'CURRENT_TIMESTAMP'],
    ['transaction_timestamp()', 'CURRENT_TIMESTAMP'],
    ['statement_timestamp()', 'CURRENT_TIMESTAMP'],
    ['CURRENT_DATE', 'CURRENT_DATE'],
    ['current_time', 'CURRENT_TIME'],
    ['0', '0'],
    ['-1.5', '-1.5'],
    ["'-1'::integer", "'-1'"],
    ['false', '0'],
    ['NULL::text', 'NULL'],
    ["'it''s'::text", "'it''s'"],
    ["'x'::character varying(20)", "'x'"],
    ["'ok'::app.mood", "'ok'"],
    ["('a'::text)", "'a'"],
    ["'2020-01-01 00:00:00'::timestamp without time zone", "'2020-01-01 00:00:00'"],
  ])('%s → %s', (pg, sqlite) => {
    expect(sqliteDefault(pg)).toBe(sqlite)
    expect(defaultKind(pg)).toBe('portable')
  })

  it.each([
    'gen_random_uuid()',
    "nextval('seq'::regclass)",
    "(now() + '1 day'::interval)",
    'random()',
    "lower('A'::text)",
  ])('%s is server_only', (pg) => {
    expect(sqliteDefault(pg)).toBeUndefined()
    expect(defaultKind(pg)).toBe('server_only')
  })

  it('blank default → none', () => {
    expect(defaultKind(undefined)).toBe('none')
    expect(defaultKind('  ')).toBe('none')
  })

  const castName = fc.constantFrom(
    'text',
    'integer',
    'order_status',
    'character varying',
    'text[]',
    'app.mood',
    '"Quoted Type"',
    'numeric(10,2)',
  )

  it('property: any integer/decimal literal with any stack of casts and parentheses translates to itself', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.nat(99),
        fc.array(fc.tuple(castName, fc.boolean()), { maxLength: 4 }),
        (n, frac, wraps) => {
          const literal = frac % 2 === 0 ? String(n) : `${n}.${frac}`
          let sql = literal
          for (const [cast, paren] of wraps) sql = paren ? `(${sql})::${cast}` : `${sql}::${cast}`
          expect(sqliteDefault(sql)).toBe(literal)
        },
      ),
    )
  })

  it('property: quoted string literals survive casts with quotes kept', () => {
    fc.assert(
      fc.property(fc.string(), fc.array(castName, { maxLength: 3 }), (s, casts) => {
        const literal = `'${s.replaceAll("'", "''")}'`
        const sql = casts.reduce((acc, c) => `${acc}::${c}`, literal)
        expect(sqliteDefault(sql)).toBe(literal)
        expect(normaliseDefault(sql)).toBe(literal)
      }),
    )
  })

  it('property: normalising is idempotent', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const once = normaliseDefault(s)
        expect(normaliseDefault(once)).toBe(once)
      }),
    )
  })
})

describe('§2.3 logical type mapping', () => {
  it.each([
    ['boolean', 'boolean'],
    ['smallint', 'int'],
    ['integer', 'int'],
    ['bigint', 'int64'],
    ['real', 'float'],
    ['double precision', 'float'],
    ['numeric', 'float'],
    ['numeric(10,2)', 'float'],
    ['text', 'string'],
    ['character varying(20)', 'string'],
    ['character(1)', 'string'],
    ['uuid', 'string'],
    ['json', 'json'],
    ['jsonb', 'json'],
    ['bytea', 'bytes'],
    ['date', 'date'],
    ['time without time zone', 'time'],
    ['time with time zone', 'time'],
    ['time(3) without time zone', 'time'],
    ['timestamp without time zone', 'datetime'],
    ['timestamp with time zone', 'datetime'],
    ['timestamp(6) with time zone', 'datetime'],
    ['interval', 'string'],
    ['integer[]', 'json'],
    ['text[]', 'json'],
    ['  BIGINT ', 'int64'],
  ])('%s → %s', (db, logical) => {
    expect(logicalTypeOf(db)).toBe(logical)
  })

  it.each(['point', 'inet', 'hstore', 'tsvector', 'money', 'xml', 'citext'])('%s is unsupported', (db) => {
    expect(logicalTypeOf(db)).toBeUndefined()
  })

  it('property: any type name followed by [] (one or more) is json', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z_][a-z0-9_ ]{0,20}$/), fc.integer({ min: 1, max: 3 }), (name, dims) => {
        expect(logicalTypeOf(name + '[]'.repeat(dims))).toBe('json')
      }),
    )
  })

  it('property: precision modifiers never change the logical type', () => {
    const base = fc.constantFrom(
      'numeric',
      'character varying',
      'character',
      'timestamp with time zone',
      'time without time zone',
    )
    fc.assert(
      fc.property(base, fc.integer({ min: 0, max: 1000 }), (b, p) => {
        const withP =
          b.startsWith('timestamp') || b.startsWith('time ')
            ? b.replace(/^(timestamp|time)/, `$1(${p % 7})`)
            : `${b}(${p})`
        expect(logicalTypeOf(withP)).toBe(logicalTypeOf(b))
      }),
    )
  })
})
