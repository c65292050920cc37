import { type OptionSpec, RUNNERS } from '../spec.js'

/** Shutdown, timeouts and the admission limits that bound memory and work per request and user. */
export const LIMIT_OPTIONS = [
  {
    name: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout',
    env: 'SHUTDOWN_TIMEOUT',
    kind: 'duration',
    default: 30_000,
    defaultText: '30s',
    commands: RUNNERS,
    description: 'On SIGINT/SIGTERM, how long in-flight requests may take before connections are cut.',
  },
  {
    name: 'requestTimeoutMs',
    flag: 'request-timeout',
    env: 'REQUEST_TIMEOUT',
    kind: 'duration',
    default: 5_000,
    defaultText: '5s',
    commands: ['serve'],
    description:
      'Deadline of every /sync request: when the database makes no progress on it for this long, the answer is ' +
      '503 + Retry-After and nothing commits (also its statement and lock timeout). 0 = none.',
  },
  {
    name: 'maxInFlight',
    flag: 'max-in-flight',
    env: 'MAX_IN_FLIGHT',
    kind: 'integer',
    default: 256,
    commands: ['serve'],
    description: '/sync requests served at once, all users; beyond → 503 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxInFlightPerUser',
    flag: 'max-in-flight-per-user',
    env: 'MAX_IN_FLIGHT_PER_USER',
    kind: 'integer',
    default: 8,
    commands: ['serve'],
    description: '/sync requests served at once for one user; beyond → 429 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxBodyBytesInFlight',
    flag: 'max-body-bytes-in-flight',
    env: 'MAX_BODY_BYTES_IN_FLIGHT',
    kind: 'integer',
    default: 16 * 1024 * 1024,
    defaultText: '16777216 (16 MiB)',
    commands: ['serve'],
    description:
      'Request body bytes held in memory at once, all requests (a body alone is bounded by the 10 MiB body ' +
      'limit); beyond → 503 + Retry-After. 0 = unbounded.',
  },
  {
    name: 'maxJsonDepth',
    flag: 'max-json-depth',
    env: 'MAX_JSON_DEPTH',
    kind: 'integer',
    default: 64,
    commands: ['serve'],
    description:
      'Deepest nesting of a pushed `data` object (itself level 1); deeper → `rejected_terminal` `invalid_data`. ' +
      'Stored rows nesting deeper are left out of pages (logged, recorded in sync_rule_failures).',
  },
  {
    name: 'maxClientsPerUser',
    flag: 'max-clients-per-user',
    env: 'MAX_CLIENTS_PER_USER',
    kind: 'integer',
    default: 100,
    commands: ['serve'],
    description: 'Active clients one user may register; a new client_id beyond → 403. 0 = unbounded.',
  },
] as const satisfies readonly OptionSpec[]
