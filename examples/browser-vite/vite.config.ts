import { defineConfig } from 'vite'

export default defineConfig({
  // The SDK's database worker is an ES module worker.
  worker: { format: 'es' },
  // sqlite-wasm finds its .wasm next to its own module; pre-bundling in the dev server would move it.
  optimizeDeps: { exclude: ['@sqlite.org/sqlite-wasm'] },
  build: { target: 'es2022' },
  // Same origin for the page and the sync server: no CORS needed (synchrod serves /sync/*).
  server: { proxy: { '/sync': 'http://localhost:8080' } },
})
