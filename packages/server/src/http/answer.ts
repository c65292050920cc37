import type { RequestDeadline } from '../limits/deadline.js'

/**
 * The work's answer, or `expired()` (503 + Retry-After) once the deadline passes first (unless a commit is under
 * way). The deadline moves on while the work makes progress (RequestDeadline), so the timer re-arms until it really
 * passed. `timeoutMs` 0 (or less): no deadline, the work's answer whenever it comes.
 */
export function answerBy(
  work: Promise<Response>,
  deadline: RequestDeadline,
  timeoutMs: number,
  expired: () => Response,
): Promise<Response> {
  if (!(timeoutMs > 0)) return work
  return new Promise<Response>((resolve) => {
    let answered = false
    let timer: NodeJS.Timeout
    const check = () => {
      const left = deadline.remainingMs()
      if (left > 1) {
        timer = setTimeout(check, left)
        return
      }
      if (!deadline.expire()) return // committing: the real answer follows
      answered = true
      resolve(expired())
    }
    timer = setTimeout(check, timeoutMs)
    void work.then((response) => {
      clearTimeout(timer)
      if (!answered) return resolve(response)
      // Late: nobody will read it; an event stream set up meanwhile must unsubscribe.
      response.body?.cancel().catch(() => {})
    })
  })
}
