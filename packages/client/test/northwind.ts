/** Northwind (PROTOCOL.md §5) for the client's end-to-end tests: the shared fixture of the test harness. */
export {
  NORTHWIND_SEED_SQL as NORTHWIND_SEED,
  NORTHWIND_SQL as NORTHWIND_DDL,
  NORTHWIND_TABLES,
} from '@synchro/test-harness/northwind'
