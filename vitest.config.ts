import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript sources through the `source` export condition.
const conditions = ['source', 'node']

/** Where test files live; the file name's suffix says what a test needs (see docs/testing.md). */
const TEST_ROOTS = [
  'packages/*/src/**/',
  'packages/*/test/**/',
  'test-harness/**/',
  'tests/**/',
  'bench/**/',
  'scripts/**/',
  'examples/**/',
]
const files = (suffix: string) => TEST_ROOTS.map((root) => `${root}*${suffix}`)
/** Tests that need the run's PostgreSQL (`*.pg.test.ts`) or a real server stack in Chromium (`*.web.test.ts`). */
const PG_TESTS = [...files('.pg.test.ts'), ...files('.web.test.ts')]

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // op-sqlite's Node build imports `./database` without an extension, which Node's ESM loader refuses: let vite
    // transform (and resolve) it instead.
    server: { deps: { inline: [/@op-engineering[\\/]op-sqlite/] } },
    // `npm test` runs both projects; `npx vitest run --project unit` runs the pure ones alone.
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: files('.test.ts'),
          exclude: ['**/node_modules/**', ...PG_TESTS],
          // No PostgreSQL here: the setup hides the run's database URL, so a test that reaches for one fails loudly.
          setupFiles: ['./test-harness/unit-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'pg',
          include: PG_TESTS,
          exclude: ['**/node_modules/**'],
          globalSetup: ['./test-harness/global-setup.ts'],
        },
      },
    ],
  },
})
