import { DB, type OptionSpec, RUNNERS } from '../spec.js'

/** The database: where it is (or the embedded one), the config file, the demo schema. */
export const DATABASE_OPTIONS = [
  {
    name: 'config',
    flag: 'config',
    env: 'SYNCHRO_CONFIG',
    kind: 'string',
    defaultText: '`./synchro.config.json` when present',
    commands: DB,
    description:
      'JSON config file: `tables`, `minClientVersion`, `conflictResolver`, `clockSkewToleranceMs`, `compaction`, `wal`.',
  },
  {
    name: 'databaseUrl',
    flag: 'database-url',
    env: 'DATABASE_URL',
    kind: 'string',
    secret: true,
    // Blank is an error, not "absent": an empty DATABASE_URL must not silently start an embedded PostgreSQL.
    nonBlank: true,
    defaultText: 'embedded PostgreSQL',
    commands: DB,
    description:
      'PostgreSQL connection string. When absent, an embedded PostgreSQL 17 runs with data in --data-dir. Set but empty is an error.',
  },
  {
    name: 'replicationUrl',
    flag: 'replication-url',
    env: 'REPLICATION_URL',
    kind: 'string',
    secret: true,
    defaultText: 'DATABASE_URL',
    commands: RUNNERS,
    description:
      'Connection string for the replication and leader-lock connections: the same database as DATABASE_URL (checked at start), set only with it.',
  },
  {
    name: 'dataDir',
    flag: 'data-dir',
    env: 'SYNCHRO_DATA_DIR',
    kind: 'string',
    default: './.synchro/pgdata',
    commands: DB,
    description: 'Data folder of the embedded PostgreSQL (used only without DATABASE_URL).',
  },
  {
    name: 'embeddedRestarts',
    flag: 'embedded-restarts',
    env: 'SYNCHRO_EMBEDDED_RESTARTS',
    kind: 'integer',
    default: 8,
    commands: RUNNERS,
    description:
      'Embedded PostgreSQL that dies is restarted with backoff (0.5 s doubling to 10 s); after this many failed attempts in a row synchrod exits 1. 0: exit at once.',
  },
  {
    name: 'demo',
    flag: 'demo',
    env: 'SYNCHRO_DEMO',
    kind: 'boolean',
    default: false,
    commands: DB,
    description:
      'Create the Northwind demo schema with seed rows and sync its tables (ignores `tables` in the config).',
  },
] as const satisfies readonly OptionSpec[]
