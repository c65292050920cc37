import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { parseListenAddr } from '../http.js'
import {
  ConfigError,
  configurationMarkdown,
  helpText,
  OPTIONS,
  parseArgs,
  parseDuration,
  resolveOptions,
} from './index.js'

describe('options table', () => {
  it('resolves flag over env over config file over default', () => {
    const config = { minClientVersion: '1.0.0', slotName: 'from_config', conflictResolver: 'server_wins' }
    const env = { MIN_CLIENT_VERSION: '2.0.0', SLOT_NAME: 'from_env' }
    const { flags } = parseArgs(['serve', '--min-client-version', '3.0.0'])
    const o = resolveOptions('serve', flags, env, config)
    expect(o.minClientVersion).toBe('3.0.0') // flag
    expect(o.slotName).toBe('from_env') // env beats config
    expect(o.conflictResolver).toBe('server_wins') // config beats default
    expect(o.publicationName).toBe('synchro_pub') // default
    expect(o.listenAddr).toBe(':8080')
  })

  it('treats empty environment variables as unset, except authentication options', () => {
    const o = resolveOptions('serve', {}, { LISTEN_ADDR: '', MIN_CLIENT_VERSION: '' })
    expect(o.listenAddr).toBe(':8080')
    expect(o.minClientVersion).toBeUndefined()
    // A blank secret must never mean "no authentication".
    expect(() => resolveOptions('serve', {}, { JWT_SECRET: '' })).toThrow('JWT_SECRET is set but empty')
    expect(() => resolveOptions('serve', {}, { JWKS_URL: '  ' })).toThrow('JWKS_URL is set but empty')
    const good = 'x'.repeat(32)
    expect(() => resolveOptions('serve', { jwtSecret: '' }, { JWT_SECRET: good })).toThrow(
      '--jwt-secret is set but empty',
    )
    expect(() => resolveOptions('serve', {}, { JWT_SECRET: 'short' })).toThrow(/JWT_SECRET is too short \(5 bytes\)/)
    expect(resolveOptions('serve', {}, { JWT_SECRET: good }).jwtSecret).toBe(good)
  })

  it('reads nested config keys and durations', () => {
    const o = resolveOptions(
      'serve',
      {},
      { COMPACTION_STALE_THRESHOLD: '2d' },
      { compaction: { intervalMs: 5000, batchSize: 7 } },
    )
    expect(o.compactionIntervalMs).toBe(5000)
    expect(o.compactionBatchSize).toBe(7)
    expect(o.compactionStaleThresholdMs).toBe(2 * 86_400_000)
    expect(parseDuration('1h')).toBe(3_600_000)
    expect(parseDuration('1500')).toBe(1500)
    expect(parseDuration('soon')).toBeUndefined()
  })

  it('accepts flags before the command as after it', () => {
    expect(parseArgs(['--demo', 'rls'])).toEqual(parseArgs(['rls', '--demo']))
    expect(parseArgs(['--config', 'c.json', '--json', 'status']).flags).toEqual({ config: 'c.json', json: true })
    expect(parseArgs(['--listen=:9', 'consume']).command).toBe('consume')
    expect(parseArgs(['--help', 'status'])).toMatchObject({ command: 'status', help: true })
    expect(() => parseArgs(['--demo', 'rls', 'x'])).toThrow('unexpected argument "x"')
    expect(() => parseArgs(['--apply', 'token'])).toThrow(/does not apply/)
  })

  it('pull read-ahead is off unless asked for (flag, env or config)', () => {
    expect(resolveOptions('serve', {}, {}).pullReadAhead).toBe(false)
    expect(resolveOptions('serve', parseArgs(['serve', '--pull-read-ahead']).flags, {}).pullReadAhead).toBe(true)
    expect(resolveOptions('serve', {}, { PULL_READ_AHEAD: 'true' }).pullReadAhead).toBe(true)
    expect(resolveOptions('serve', {}, {}, { pullReadAhead: true }).pullReadAhead).toBe(true)
  })

  it('parses booleans with --no- and rejects unknown or misplaced flags', () => {
    expect(parseArgs(['serve', '--no-consumer']).flags.consumer).toBe(false)
    expect(parseArgs(['--demo']).flags.demo).toBe(true)
    expect(() => parseArgs(['--nope'])).toThrow(/unknown flag --nope/)
    expect(() => parseArgs(['token', '--apply'])).toThrow(/does not apply/)
    expect(() => parseArgs(['frobnicate'])).toThrow(ConfigError)
  })

  it('names the setting in validation errors', () => {
    expect(() => resolveOptions('serve', {}, {}, { conflictResolver: 'nope' }, '/x/c.json')).toThrow(
      'config file /x/c.json: conflictResolver: must be one of lww, server_wins; got "nope"',
    )
    expect(() => resolveOptions('serve', {}, { CLOCK_SKEW_TOLERANCE_MS: '-5' })).toThrow(/CLOCK_SKEW_TOLERANCE_MS/)
  })

  it('hides secret values in errors', () => {
    expect(() => resolveOptions('serve', { jwtSecret: true as unknown as string }, {})).toThrow('(hidden)')
  })

  it('help lists every flag and env var of the command', () => {
    const help = helpText('serve')
    for (const o of OPTIONS.filter((x) => (x.commands as readonly string[]).includes('serve'))) {
      expect(help).toContain(
        o.kind === 'boolean' && 'default' in o && o.default === true ? `--no-${o.flag}` : `--${o.flag}`,
      )
      if ('env' in o) expect(help).toContain(o.env)
    }
  })

  it('docs/configuration.md is generated from the table and up to date', async () => {
    const committed = await readFile(new URL('../../../../docs/configuration.md', import.meta.url), 'utf8')
    expect(committed, 'run `npm run docs -w synchrod`').toBe(configurationMarkdown())
  })
})

describe('LISTEN_ADDR', () => {
  it('accepts Go-style addresses', () => {
    expect(parseListenAddr(':8080')).toEqual({ host: undefined, port: 8080 })
    expect(parseListenAddr('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseListenAddr('[::1]:9000')).toEqual({ host: '::1', port: 9000 })
    expect(parseListenAddr('localhost:80')).toEqual({ host: 'localhost', port: 80 })
  })

  it('rejects anything else with the variable name', () => {
    for (const bad of ['8080', 'abc', ':99999', 'host:', '::1:80'])
      expect(() => parseListenAddr(bad)).toThrow(/LISTEN_ADDR/)
    expect(() => parseListenAddr('8080')).toThrow(/did you mean ":8080"/)
  })
})
