import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';

/** Where `npm run build` puts the web console (web/ built by Vite): dist/web beside dist/api. */
export const CONSOLE_DIR = fileURLToPath(new URL('../web', import.meta.url));

/** Paths the API owns: the console never answers for them, not even with its index.html. */
const API_PATHS = ['/graphql', '/agent', '/healthz', '/readyz', '/metrics', '/session'];

/**
 * The console's Content-Security-Policy: its own scripts, styles and images only, no inline
 * script or style, no eval, requests (HTTP and WebSocket) to this server only, no plugins, no
 * <base>, forms posting nowhere else, and no framing by any page (clickjacking). The built console
 * satisfies it: Vite emits external files only, React sets styles through the CSSOM (which CSP
 * does not govern), and test/e2e/webConsole.test.ts fails on any violation Chromium reports.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

/** Headers on every answer of the console. */
export const CONSOLE_SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONSOLE_CSP,
  // frame-ancestors' predecessor, for browsers that predate it.
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  // Console URLs name machines and runs: they are nobody else's business.
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

const ownedByApi = (urlPath: string) => API_PATHS.some((prefix) => urlPath === prefix || urlPath.startsWith(`${prefix}/`));

/**
 * The web console at `/`: its built files, and index.html for any other GET that a browser
 * navigates to (a client route such as /machines/42 opened directly or reloaded).
 * Hashed assets are cached for good; index.html never, so a new build is picked up at once.
 */
export function webConsole(dir: string = CONSOLE_DIR): RequestHandler {
  const index = path.join(dir, 'index.html');
  const files = express.static(dir, {
    index: false,
    setHeaders: (res, file) => {
      res.setHeader('Cache-Control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const router = express.Router();
  router.use((req, res, next) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || ownedByApi(req.path)) return next();
    res.set(CONSOLE_SECURITY_HEADERS);
    files(req, res, () => {
      // A missing asset is a 404, not the app: only page navigations fall back to index.html.
      if (path.extname(req.path) !== '' || !req.accepts('html')) return next();
      if (!fs.existsSync(index)) {
        res.status(404).type('text/plain').send(`The web console is not built (no ${index}): run \`npm run build\`, then restart the server.\n`);
        return;
      }
      res.setHeader('Cache-Control', 'no-cache');
      res.sendFile(index);
    });
  });
  return router;
}
