import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { computeSurface, formatSurface, SNAPSHOT } from './surface.js'

// One type-check of every entry, shared by both tests.
const surface = computeSurface()

describe('public API surface', () => {
  it('every package export matches scripts/api/surface.json (after a deliberate change: npm run api:update)', () => {
    const committed = readFileSync(SNAPSHOT, 'utf8')
    expect(formatSurface(surface)).toBe(committed)
  })

  it('internals stay out of the main entries', () => {
    const s = surface
    const server = Object.keys(s['@synchro/server']?.['.'] ?? {})
    for (const name of [
      'goJson',
      'bigintToLsn',
      'INFRASTRUCTURE_SQL',
      'leaderLockKey',
      'guardPool',
      'toNodeListener',
    ]) {
      expect(server).not.toContain(name)
    }
    expect(Object.keys(s['@synchro/server']?.['./node'] ?? {})).toEqual(['toNodeListener'])
    const client = Object.keys(s['@synchro/client']?.['.'] ?? {})
    for (const name of ['Mutex', 'Timers', 'backoffDelayMs', 'resolveConfig', 'ResolvedConfig']) {
      expect(client).not.toContain(name)
    }
    expect(Object.keys(s['@synchro/protocol']?.['.'] ?? {})).not.toContain('Record')
  })
})
