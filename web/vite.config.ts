import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

// The console is built into dist/web, which `fleetpatch server` serves at / (src/api/console.ts).
// `npx vite --config web/vite.config.ts` serves it with hot reload, proxying the API to PORT (4000).
export default defineConfig({
  root,
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 1000,
  },
  server: {
    // /session too: the console signs in there (its cookie then goes with every request).
    proxy: {
      '/graphql': { target: `http://127.0.0.1:${process.env.PORT ?? 4000}`, ws: true },
      '/session': { target: `http://127.0.0.1:${process.env.PORT ?? 4000}` },
    },
  },
});
