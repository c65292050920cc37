/**
 * A consumer process for the crash test (`crash.pg.test.ts`): runs startWalConsumer on the Northwind registry until
 * it is killed. Prints `ready` once streaming. Not part of the library.
 */

import { startWalConsumer } from '@synchro/server'
import pg from 'pg'
import { northwindRegistry } from '../wal-fixtures.js'

const url = process.env.SYNCHRO_CRASH_DB_URL
if (!url) throw new Error('SYNCHRO_CRASH_DB_URL is required')
const pool = new pg.Pool({ connectionString: url, max: 4 })
pool.on('error', () => {})
const consumer = startWalConsumer({
  pool,
  registry: northwindRegistry(),
  replicationUrl: url,
  slotName: process.env.SYNCHRO_CRASH_SLOT ?? 'synchro_slot',
  statusIntervalMs: 100,
  leaderRetryMs: 50,
  batchMaxEvents: Number(process.env.SYNCHRO_CRASH_BATCH ?? 50),
  logicalDecodingWorkMem: process.env.SYNCHRO_CRASH_WORK_MEM,
  onError: (e) => process.stderr.write(`consumer error: ${e.message}\n`),
})
const timer = setInterval(() => {
  if (consumer.status().running) {
    process.stdout.write('ready\n')
    clearInterval(timer)
  }
}, 10)
