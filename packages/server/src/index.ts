export * from './errors.js'
export { INFRASTRUCTURE_SQL, runMigrations } from './migrations/migrations.js'
export { Registry, RegistryError, type ResolvedTable, type TableConfig } from './registry/registry.js'
