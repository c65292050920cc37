/**
 * Progress lines for long one-shot commands, on a terminal only: stderr is redrawn in place (`\r`), so logs and
 * pipes (stdout carries the command's result) never see it.
 */
export interface ProgressLine {
  update(text: string): void
  /** Ends the line (prints a newline when something was drawn). */
  done(): void
}

export function progressLine(stream: NodeJS.WriteStream = process.stderr): ProgressLine {
  let drawn = false
  let width = 0
  return {
    update(text) {
      if (!stream.isTTY) return
      // Pad over the rest of a longer previous line.
      stream.write(`\r${text.padEnd(width)}`)
      width = text.length
      drawn = true
    },
    done() {
      if (drawn) stream.write('\n')
      drawn = false
    },
  }
}

export function percent(done: number, total: number): string {
  return total > 0 ? `${Math.floor((100 * done) / total)}%` : '100%'
}
