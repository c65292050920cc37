export { createTestApp, type TestApp, type TestAppOptions } from './app.js'
export { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES, registerNorthwind } from './northwind.js'
export { createTestDatabase, databaseIdle, rootUrl, type TestDatabase, withDatabase } from './pg.js'
export { createAppRolePool } from './roles.js'
