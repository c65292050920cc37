import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { buildWasm, GENERATED, generatedText } from './build.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

describe('the checked-in WebAssembly module', () => {
  it('is the build of the checked-in AssemblyScript source (npm run build:wasm after editing it)', async () => {
    const binary = await buildWasm()
    expect(readFileSync(`${ROOT}${GENERATED}`, 'utf8')).toBe(generatedText(binary))
  })
})
