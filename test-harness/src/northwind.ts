import type { Registry, TableConfig } from '@synchro/server'
import { DEMO_SCHEMA_SQL, DEMO_SEED_SQL, DEMO_TABLES } from 'synchrod/demo'

/**
 * The reference test schema of PROTOCOL.md §5 ("Northwind"). It is also the daemon's demo (`synchrod --demo`), so
 * tests and the demo never drift apart; the DDL is idempotent.
 */
export const NORTHWIND_SQL = DEMO_SCHEMA_SQL

/** Seed rows with real UUIDs (§5.3): 5 products (Widget A has a 2-byte thumbnail) and 3 global categories. */
export const NORTHWIND_SEED_SQL = DEMO_SEED_SQL

/** The registry of §5.2, in registration order. */
export const NORTHWIND_TABLES: TableConfig[] = DEMO_TABLES

/** Registers the Northwind tables (optionally in another order) on a registry. */
export function registerNorthwind(registry: Registry, tables: TableConfig[] = NORTHWIND_TABLES): Registry {
  for (const t of tables) registry.register(t)
  return registry
}
