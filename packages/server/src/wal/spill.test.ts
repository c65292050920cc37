import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { Change, RowChange } from '../changelog/changes.js'
import { removeOrphans, SpillDirectory, SpillFile } from './spill.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'synchro-spill-unit-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

/** A stand-in change carrying the payload's text, so the order and content read back can be compared. */
const decodeText = (payload: Buffer): Change | null =>
  payload[0] === 0x52 ? null : ({ kind: 'insert', id: payload.toString('latin1') } as unknown as RowChange)
const ids = (parts: Iterable<Change[]>) => [...parts].map((p) => p.map((c) => (c as RowChange).id))

it('reads records back in order, in parts, across block boundaries and with records bigger than a block', () => {
  const f = new SpillFile(dir, 7, true)
  const expected: string[] = []
  for (let i = 0; i < 3000; i++) {
    // Sizes vary so records straddle the 1 MiB write/read blocks; two are bigger than a block.
    const body = i === 1000 || i === 2999 ? 'x'.repeat(3 << 20) : 'r'.repeat(i % 997)
    const text = `I${i}:${body}`
    f.append(7, Buffer.from(text, 'latin1'), true)
    expected.push(text)
  }
  f.seal(decodeText)
  expect(f.size).toBe(3000)
  const parts = ids(f.parts(1000))
  expect(parts.map((p) => p.length)).toEqual([1000, 1000, 1000])
  expect(parts.flat()).toEqual(expected)
  // Readable again (a retry reads the same file).
  expect(ids(f.parts(2999)).flat()).toEqual(expected)
  f.dispose()
  expect(readdirSync(dir)).toEqual([])
})

it('skips the records of aborted subtransactions and non-row messages; yields the in-memory head first', () => {
  const head = [
    { kind: 'insert', id: 'h1' },
    { kind: 'insert', id: 'h2' },
  ] as unknown as Change[]
  const f = new SpillFile(dir, 1, false, head)
  f.append(1, Buffer.from('Ia'), true)
  f.append(2, Buffer.from('Rrelation'), false)
  f.append(2, Buffer.from('Ib'), true)
  f.append(3, Buffer.from('Ic'), true)
  f.abortSubtransaction(3)
  f.append(1, Buffer.from('Id'), true)
  f.seal(decodeText)
  expect(f.size).toBe(6)
  expect(ids(f.parts(3))).toEqual([
    ['h1', 'h2', 'Ia'],
    ['Ib', 'Id'],
  ])
  f.dispose()
  expect(head).toEqual([])
  expect(() => [...f.parts(3)]).toThrow(/after it was freed/)
})

it('a session directory is private and removed with its files', () => {
  const d = new SpillDirectory(dir)
  const f = new SpillFile(d.path, 9, true)
  f.append(9, Buffer.from('Ix'), true)
  d.remove()
  expect(existsSync(d.path)).toBe(false)
  f.dispose()
})

it("a new session directory removes those of processes that no longer exist, never a live process's", () => {
  // A pid far above any pid_max in use is free; this process's own pid is alive.
  const dead = path.join(dir, 'synchro-wal-999999999-abc')
  const alive = path.join(dir, `synchro-wal-${process.pid}-def`)
  const other = path.join(dir, 'something-else')
  for (const d of [dead, alive, other]) {
    mkdirSync(d)
    writeFileSync(path.join(d, 'xid-1-1'), 'x')
  }
  removeOrphans(dir)
  expect([existsSync(dead), existsSync(alive), existsSync(other)]).toEqual([false, true, true])
  const d = new SpillDirectory(dir)
  expect(path.basename(d.path).startsWith(`synchro-wal-${process.pid}-`)).toBe(true)
  d.remove()
})
