// 10. Metrics under client aborts: clients that send the headers and part of a push body and then drop the
// connection are the client's doing, not the server's. The daemon must count them in
// synchro_http_client_aborts_total and never as 5xx in synchro_http_requests_total (a 503 count that pages someone),
// and keep serving complete requests meanwhile.
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { NORTHWIND_SQL } from '@synchro/test-harness/northwind'
import { type Daemon, freePort, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { createDb } from '../lib/db.js'
import { call } from '../lib/http.js'
import { RawClient } from '../lib/raw-client.js'
import { poll } from '../lib/util.js'

export interface ClientAbortsOptions {
  root: string
  aborts: number
}

export interface ClientAbortsReport {
  aborts: number
  countedAborts: number
  /** synchro_http_requests_total with a 5xx status, summed over routes. */
  counted5xx: number
  completeRequests: { sent: number; ok: number }
  violations: string[]
}

/** Opens a socket, sends a push's headers and half its declared body, then destroys the socket. */
function abortMidBody(base: string, user: string): Promise<void> {
  const u = new URL(base)
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => {
      const body = JSON.stringify({ client_id: 'aborter', schema_version: 0, schema_hash: '', changes: [] })
      socket.write(
        `POST /sync/push HTTP/1.1\r\nHost: ${u.host}\r\nX-User-ID: ${user}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length + 10_000}\r\n\r\n${body}`,
      )
      // Let the server start reading the body before the client goes away.
      setTimeout(() => {
        socket.destroy()
        resolve()
      }, 30)
    })
    socket.on('error', () => resolve())
  })
}

/** Sums the samples of `name` whose labels match `filter`. */
function metric(text: string, name: string, filter: (labels: string) => boolean = () => true): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`).exec(line)
    if (m && filter(m[1] as string)) sum += Number(m[2])
  }
  return sum
}

export async function runClientAborts(o: ClientAbortsOptions): Promise<ClientAbortsReport> {
  const violations: string[] = []
  const db = await createDb(o.root, 'rel_aborts')
  await db.pool.query(NORTHWIND_SQL)
  let daemon: Daemon | undefined
  let countedAborts = 0
  let counted5xx = 0
  const complete = { sent: 0, ok: 0 }
  try {
    daemon = await startSynchrod({ db, port: await freePort() })
    const d = daemon
    const user = randomUUID()
    const client = new RawClient(() => d.url, user)
    if (!(await client.bootstrap())) violations.push('bootstrap failed')
    // Aborts in waves of 10, each wave alongside a complete push. Each aborting socket is its own user, so the
    // per-user in-flight bound (admission control answers 429 beyond it) never decides what is counted.
    for (let i = 0; i < o.aborts; i += 10) {
      const wave = Array.from({ length: Math.min(10, o.aborts - i) }, () => abortMidBody(d.url, randomUUID()))
      complete.sent++
      const a = await client.push([])
      if (a.status === 200) complete.ok++
      await Promise.all(wave)
    }
    // The daemon notices each abort when its socket closes: wait until all are counted.
    let text = ''
    await poll(
      async () => {
        text = (await call(d.url, 'GET', '/metrics')).text
        return metric(text, 'synchro_http_client_aborts_total') >= o.aborts
      },
      30_000,
      'every abort counted',
    ).catch((err: Error) => violations.push(err.message))
    countedAborts = metric(text, 'synchro_http_client_aborts_total', (l) => l.includes('route="/sync/push"'))
    counted5xx = metric(text, 'synchro_http_requests_total', (l) => /status="5\d\d"/.test(l))
    if (countedAborts !== o.aborts) violations.push(`${countedAborts} aborts counted for ${o.aborts}`)
    if (counted5xx > 0) violations.push(`${counted5xx} requests counted as 5xx`)
    if (complete.ok !== complete.sent) violations.push(`${complete.sent - complete.ok} complete pushes failed`)
    if (/"status":5\d\d/.test(d.output())) violations.push('a 5xx in the access log')
  } finally {
    if (daemon) await stopGracefully(daemon)
    await db.drop()
  }
  return { aborts: o.aborts, countedAborts, counted5xx, completeRequests: complete, violations }
}
