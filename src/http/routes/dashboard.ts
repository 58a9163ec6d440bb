/**
 * The operator's web dashboard: GET / serves its page, /dashboard/* its scripts and styles (plain
 * files from web/dashboard, no build step). The page holds no data: it asks for an API key, keeps it
 * in sessionStorage and calls the JSON API with it like any client, so it sees one tenant's jobs.
 */
import staticFiles from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * web/dashboard from the checkout (src/http/routes -> ../../..) or from a build, where this file
 * runs as dist/src/http/routes/dashboard.js and web/ sits next to dist/ (-> ../../../..).
 */
const CANDIDATES = [resolve(import.meta.dirname, '../../../web/dashboard'), resolve(import.meta.dirname, '../../../../web/dashboard')];

/** The assets' directory, or null where this install has none. */
export function dashboardRoot(): string | null {
  return CANDIDATES.find((dir) => existsSync(join(dir, 'index.html'))) ?? null;
}

/**
 * The page only runs its own scripts and talks only to this origin: a script injected through data
 * could otherwise read the key in sessionStorage.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export default async function dashboard(app: FastifyInstance): Promise<void> {
  const root = dashboardRoot();
  // An image built without web/ still serves the API; only the page is missing, and the log says why.
  if (root === null) {
    app.log.warn({ lookedIn: CANDIDATES }, 'dashboard assets not found: GET / is not served');
    return;
  }
  const page = readFileSync(join(root, 'index.html'));
  await app.register(staticFiles, { root, prefix: '/dashboard/', decorateReply: false, index: false, cacheControl: true, maxAge: 0 });
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(page),
  );
}
