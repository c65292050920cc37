import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { Registry, RegistryError, type TableConfig } from '@synchro/server'
import { DEMO_TABLES } from './demo.js'
import {
  CONFIG_KEYS,
  type CommandName,
  ConfigError,
  NESTED_CONFIG_KEYS,
  type Options,
  type ParsedArgs,
  resolveOptions,
  TABLE_FIELDS,
} from './options/index.js'

export const DEFAULT_CONFIG_FILE = 'synchro.config.json'

/** The JSON config file, after shape checks. */
export interface ConfigFile {
  /** Absolute path, or undefined when no file was given or found. */
  path: string | undefined
  raw: Record<string, unknown>
  tables: TableConfig[]
}

/** Everything a command needs from flags, env and the config file. */
export interface Settings {
  command: CommandName
  options: Options
  file: ConfigFile
}

/**
 * Finds and reads the config file: `--config`, else `SYNCHRO_CONFIG`, else `./synchro.config.json` when it exists.
 * An explicitly named file that is missing is an error; the implicit default is optional.
 */
export async function loadConfigFile(explicit: string | undefined, cwd = process.cwd()): Promise<ConfigFile> {
  const implicit = path.join(cwd, DEFAULT_CONFIG_FILE)
  const file = explicit ? path.resolve(cwd, explicit) : existsSync(implicit) ? implicit : undefined
  if (!file) return { path: undefined, raw: {}, tables: [] }
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`config file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${file}: invalid JSON: ${(err as Error).message}`)
  }
  return { path: file, raw: checkShape(raw, file), tables: [] }
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v
}

/** Checks keys and JSON types; value rules (choices, ranges) are checked when options are resolved. */
function checkShape(raw: unknown, file: string): Record<string, unknown> {
  const fail = (what: string) => new ConfigError(`config file ${file}: ${what}`)
  if (typeName(raw) !== 'object') throw fail(`expected a JSON object, got ${typeName(raw)}`)
  const obj = raw as Record<string, unknown>
  for (const key of Object.keys(obj)) {
    if (key !== 'tables' && key !== '$schema' && !CONFIG_KEYS.has(key)) {
      throw fail(`unknown field "${key}" (allowed: tables, ${[...CONFIG_KEYS].join(', ')})`)
    }
  }
  for (const [group, keys] of NESTED_CONFIG_KEYS) {
    const value = obj[group]
    if (value === undefined) continue
    if (typeName(value) !== 'object') throw fail(`${group}: expected an object, got ${typeName(value)}`)
    for (const key of Object.keys(value as object)) {
      if (!keys.includes(key)) throw fail(`unknown field "${group}.${key}" (allowed: ${keys.join(', ')})`)
    }
  }
  if (obj.tables !== undefined) {
    if (!Array.isArray(obj.tables)) throw fail(`tables: expected an array, got ${typeName(obj.tables)}`)
    const fields = new Map(TABLE_FIELDS.map(([name, type]) => [name, type]))
    obj.tables.forEach((t: unknown, i: number) => {
      const at = `tables[${i}]`
      if (typeName(t) !== 'object') throw fail(`${at}: expected an object, got ${typeName(t)}`)
      const table = t as Record<string, unknown>
      for (const [key, value] of Object.entries(table)) {
        const type = fields.get(key)
        if (!type) throw fail(`${at}: unknown field "${key}"`)
        const ok =
          type === 'string[]'
            ? Array.isArray(value) && value.every((v) => typeof v === 'string')
            : typeof value === type
        if (!ok) throw fail(`${at}.${key}: expected ${type}, got ${typeName(value)}`)
      }
      if (typeof table.tableName !== 'string' || table.tableName.trim() === '') {
        throw fail(`${at}.tableName is required (the name of the PostgreSQL table to sync)`)
      }
    })
  }
  return obj
}

/** Reads flags, env and config file into the settings of one command. */
export async function loadSettings(args: ParsedArgs, env: Record<string, string | undefined>): Promise<Settings> {
  const explicit = (args.flags.config as string | undefined) || env.SYNCHRO_CONFIG || undefined
  const usesConfig = args.command !== 'token' && args.command !== 'docs'
  const file = usesConfig ? await loadConfigFile(explicit) : { path: undefined, raw: {}, tables: [] }
  file.tables = (file.raw.tables as TableConfig[] | undefined) ?? []
  const options = resolveOptions(args.command, args.flags, env, file.raw, file.path)
  return { command: args.command, options, file }
}

/**
 * Builds and validates the registry: the demo's tables with --demo, else the config file's `tables`.
 * Registry rule violations name the table and the rule.
 */
export function buildRegistry(settings: Settings): Registry {
  const demo = (settings.options as { demo?: boolean }).demo === true
  const tables = demo ? DEMO_TABLES : settings.file.tables
  const where = settings.file.path ?? DEFAULT_CONFIG_FILE
  if (tables.length === 0) {
    throw new ConfigError(
      settings.file.path
        ? `config file ${where}: "tables" is empty: list the tables to sync (see docs/configuration.md)`
        : `no tables to sync: create ${DEFAULT_CONFIG_FILE} with a "tables" list (or pass --config <file>), or run with --demo`,
    )
  }
  const registry = new Registry()
  for (const t of tables) registry.register(t)
  try {
    registry.validate()
  } catch (err) {
    if (err instanceof RegistryError) throw new ConfigError(`config file ${where}: tables: ${err.message}`)
    throw err
  }
  return registry
}
