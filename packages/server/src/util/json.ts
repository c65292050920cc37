/**
 * Row JSON read from PostgreSQL without rounding: node-postgres parses json/jsonb columns with JSON.parse, which turns
 * a bigint above 2^53 or a long numeric into a nearby double. Queries returning row data pass these `types`, so
 * such numbers arrive as bigint / JsonDecimal and the response renders them exactly (stringifyJsonLossless).
 */
import { parseJsonLossless } from '@synchro/protocol'
import pg from 'pg'

const JSON_OID = 114
const JSONB_OID = 3802

function parseExact(text: string): unknown {
  return parseJsonLossless(text)
}

/** node-postgres `types` option: json and jsonb parsed exactly, every other type as usual. */
export const EXACT_JSON_TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if ((oid === JSON_OID || oid === JSONB_OID) && format !== 'binary') return parseExact
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown
  },
} as pg.CustomTypesConfig
