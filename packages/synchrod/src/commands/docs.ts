import { writeFile } from 'node:fs/promises'
import type { Settings } from '../config.js'
import { configurationMarkdown } from '../options/index.js'

/** `synchrod docs [--output docs/configuration.md]`: the configuration reference, generated from the options table. */
export async function docs(settings: Settings): Promise<void> {
  const text = configurationMarkdown()
  if (settings.options.output) await writeFile(settings.options.output, text)
  else process.stdout.write(text)
}
