// Writes docs/errors.md from the wire error registry (packages/protocol/src/errors.ts).
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { WIRE_ERRORS } from '@synchro/protocol'

/** The Markdown text of docs/errors.md. */
export function errorsDoc(): string {
  const rows = Object.entries(WIRE_ERRORS).map(
    ([code, e]) => `| \`${code}\` | ${e.status} | \`${e.message}\` | ${e.meaning} | ${e.fix} |`,
  )
  return [
    '# Wire errors',
    '',
    'Generated from `packages/protocol/src/errors.ts` by `npm run docs:errors`; do not edit by hand.',
    'Bodies are `{"error": message}`; 429/503 add `retry_after` and a `Retry-After` header; 409 has its own body',
    '(`code`, `message`, `server_schema_version`, `server_schema_hash`).',
    '',
    '| code | HTTP | message | meaning | fix |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), errorsDoc())
}
