/**
 * Setup of the `unit` test project (files not named `*.pg.test.ts` / `*.web.test.ts`): those tests run without
 * PostgreSQL. The run's database URL is hidden from them, so `createTestDatabase()` throws instead of quietly
 * connecting — a test that needs PostgreSQL must be named `*.pg.test.ts`.
 */
delete process.env.SYNCHRO_TEST_DATABASE_URL
process.env.SYNCHRO_UNIT_PROJECT = '1'
