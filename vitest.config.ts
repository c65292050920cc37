import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript sources through the `source` export condition.
const conditions = ['source', 'node']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'test-harness/**/*.test.ts',
      'tests/**/*.test.ts',
      'bench/**/*.test.ts',
      'scripts/**/*.test.ts',
      'examples/**/*.test.ts',
    ],
    globalSetup: ['./test-harness/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // op-sqlite's Node build imports `./database` without an extension, which Node's ESM loader refuses: let vite
    // transform (and resolve) it instead.
    server: { deps: { inline: [/@op-engineering[\\/]op-sqlite/] } },
  },
})
