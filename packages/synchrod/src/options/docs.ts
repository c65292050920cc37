import { CONFIG_KEYS, TABLE_FIELDS } from './config-file.js'
import { defaultOf } from './help.js'
import { COMMANDS, type OptionSpec } from './spec.js'
import { OPTIONS } from './table/index.js'

/** Pretty JSON with short string arrays on one line, as the repository's formatter writes it. */
function exampleJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /\[\n\s*((?:"[^"\n]*",\n\s*)*"[^"\n]*")\n\s*\]/g,
    (_, items: string) => `[${items.split(/,\n\s*/).join(', ')}]`,
  )
}

/** A markdown table with padded columns, as the repository's formatter (Biome) writes it, so it stays untouched. */
function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)]
}

/** docs/configuration.md, generated from the table (`synchrod docs --output docs/configuration.md`). */
export function configurationMarkdown(): string {
  const esc = (s: string) => s.replaceAll('|', '\\|')
  const out = [
    '# synchrod configuration',
    '',
    '<!-- Generated from packages/synchrod/src/options/ by `npm run docs -w synchrod`. Do not edit by hand. -->',
    '',
    'Every setting can be given as a command-line flag, an environment variable and, where listed, a key of the JSON',
    'config file. **Flags override environment variables, which override the config file**, which overrides the',
    'default. Empty environment variables count as unset, except `JWT_SECRET` and `JWKS_URL` (see Authentication).',
    '',
    '## Commands',
    '',
    ...table(
      ['Command', 'What it does'],
      Object.entries(COMMANDS).map(([name, text]) => [`\`synchrod ${name}\``, esc(text)]),
    ),
    '',
    '`synchrod` with no command runs `serve`. `synchrod <command> --help` lists the flags of one command.',
    '',
    '## Settings',
    '',
  ]
  const rows: string[][] = []
  for (const o of OPTIONS as readonly OptionSpec[]) {
    const flag =
      o.kind === 'boolean'
        ? `\`--${o.flag}\`${o.default === true ? ` / \`--no-${o.flag}\`` : ''}`
        : `\`--${o.flag} <${o.kind === 'string' ? 'value' : o.kind}>\``
    const choices = o.choices ? ` One of ${o.choices.map((c) => `\`${c}\``).join(', ')}.` : ''
    const secret = o.secret ? ' Secret: never logged.' : ''
    rows.push([
      flag,
      o.env ? `\`${o.env}\`` : '',
      o.config ? `\`${o.config}\`` : '',
      esc(defaultOf(o)),
      o.commands.join(', '),
      `${esc(o.description)}${choices}${secret}`,
    ])
  }
  out.push(...table(['Flag', 'Env var', 'Config key', 'Default', 'Commands', 'Description'], rows))
  out.push(
    '',
    'Durations accept milliseconds (`1500`) or a number with a unit: `500ms`, `30s`, `15m`, `6h`, `1d`. In the config',
    'file, numbers are milliseconds.',
    '',
    '## Config file',
    '',
    '`--config <file>` (or `SYNCHRO_CONFIG`); without either, `./synchro.config.json` is read when it exists. Unknown',
    'keys are errors, so a typo never silently falls back to a default.',
    '',
    '```json',
    exampleJson({
      tables: [
        { tableName: 'orders', ownerColumn: 'user_id' },
        { tableName: 'order_details', parentTable: 'orders', parentFkColumn: 'order_id', dependencies: ['orders'] },
        { tableName: 'products', pushPolicy: 'disabled' },
      ],
      minClientVersion: '1.2.0',
      conflictResolver: 'lww',
      clockSkewToleranceMs: 0,
      compaction: { intervalMs: 3_600_000, staleThresholdMs: 604_800_000, batchSize: 10_000 },
    }),
    '```',
    '',
    '`tables` is a list of table configurations (camelCase, see the table below); only `tableName` is required.',
    `Other top-level keys: ${[...CONFIG_KEYS].map((k) => `\`${k}\``).join(', ')}.`,
    '',
    ...table(
      ['Table field', 'Type', 'Meaning'],
      TABLE_FIELDS.map(([name, type, text]) => [`\`${name}\``, type, esc(text)]),
    ),
    '',
    '## Limits',
    '',
    'Bad input gets a 4xx, never a 500, and no client can take the server down. Fixed limits:',
    '',
    '- `client_id`, `platform`, `app_version` (register, and `client_id` of `/sync/events`) and the user identity',
    '  (token claim or `X-User-ID`): at most 255 characters; `client_name`: at most 1 024. No NUL anywhere. Beyond →',
    '  400 `invalid request body` (401 `invalid token` for the identity).',
    '- Request body: 10 MiB → 413; at most 1 000 `changes` per push → 400.',
    '',
    'Configurable (see the table above; library: `createSyncHandler` and `createEngine` options of the same name):',
    '',
    '- `--request-timeout` (`requestTimeoutMs`, 5 s): when the database makes no progress on a /sync request for',
    '  this long (stopped, overloaded, a lock held, no free connection), the answer is 503 + `Retry-After` and the',
    '  request commits nothing — a commit already under way is waited for, so an answer never contradicts the',
    '  database. Every completed round trip of the request starts the period again, so a large push that keeps the',
    "  database busy is not cut off half way. It is also the request transaction's `statement_timeout` and",
    '  `lock_timeout`. Event streams are bounded only while they open. /healthz has its own connection.',
    '- `--max-in-flight` (256) and `--max-in-flight-per-user` (8): requests being served (body read, work, answer). A',
    '  slot is held until the work really ends, even when the deadline answered first, so a stalled database cannot',
    '  pile up work. Beyond: 503 (global) or 429 (per user), both with `Retry-After`. Small requests cost little',
    "  (they queue for the pool's connections); the global bound is sized for a few hundred active clients.",
    '- `--max-body-bytes-in-flight` (16 MiB): request bodies held in memory at once (reserved from Content-Length',
    '  before reading, or as chunks arrive; one body alone is always admitted); beyond → 503 + `Retry-After`. A',
    '  request needs a few times its body size while it is parsed and written, and parsing blocks the event loop, so',
    '  this bounds peak memory and latency: with the defaults one maximum-size push is processed at a time next to',
    '  any number of small requests (docs/reliability.md, "Abuse", for RSS and /healthz figures).',
    '- `--max-json-depth` (64): nesting of a pushed `data` object (the object is level 1, `{"a":[1]}` is 2); deeper →',
    '  `rejected_terminal` `invalid_data` (never retryable). A stored row nesting deeper (written by SQL) is left out',
    '  of pull and snapshot pages with a warning and one `sync_rule_failures` row, and never fails a page.',
    '- `--max-clients-per-user` (100): active clients per user. Registering a new `client_id` beyond → 403',
    '  `too many clients for this user`; known clients always re-register. Clients deactivated by compaction do not',
    '  count. Concurrent registrations may overshoot by the per-user in-flight bound.',
    '- Compaction staleness (`--compaction-stale-threshold`) follows pull progress: pushes, empty pushes, registers',
    '  and event streams do not keep a client active; only a pull that advances its checkpoint (or finds it caught',
    '  up) does. A client deactivated this way that pulls later gets `snapshot_required` once compaction passed it.',
    '',
    '## Authentication',
    '',
    '- `JWT_SECRET`: Bearer JWTs signed with HS256/384/512; the user id is the `JWT_USER_CLAIM` claim.',
    '- `JWKS_URL`: Bearer JWTs signed with RS*/ES* keys from the JWKS endpoint (fetched once at startup to fail fast).',
    '  When a later refetch fails (a new `kid`, the cached set grown stale), the last key set read keeps verifying',
    '  tokens; with none read the answer is 503 + Retry-After, never 401 (which would tell clients their token is bad).',
    '- Neither: the user id is taken from the `X-User-ID` header, unauthenticated. The daemon logs a warning at',
    '  startup. Use it for local development only. `--dev-header-auth` asks for this mode explicitly (an error together',
    '  with `JWT_SECRET` or `JWKS_URL`); `SYNCHRO_DEV_HEADER_AUTH=false` makes a missing JWT configuration a startup',
    '  error instead, as production deployments should.',
    '- A `JWT_SECRET` or `JWKS_URL` (flag or variable) that is set but empty or blank is a startup error naming it, so a',
    '  templating mistake never turns authentication off. A `JWT_SECRET` shorter than 32 bytes is refused (RFC 7518',
    '  §3.2: an HS256 key must be at least as long as the hash).',
    '',
  )
  return out.join('\n')
}
