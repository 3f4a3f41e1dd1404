// /admin: the example app's operator page (example/admin/index.html, admin.js, admin.css), static files
// read once at startup and served with a strict Content-Security-Policy. The page itself holds no data: it
// signs in with a token and reads everything through /graphql (example/sql/app_admin.sql), so RLS and the
// functions' checks decide what it shows. /admin/dev-tokens (ADMIN_DEV_TOKENS=on, never in production)
// mints tokens for the example logins. A node-style handler: example/server.ts hands it to ballast's
// server as one of `middlewares` (after CORS, before the GraphQL body is read).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import type { NodeMiddleware } from 'ballast/postgraphile';
import { EXAMPLE_LOGINS, mintLoginToken } from './example_users.ts';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const ASSETS: Record<string, { file: string; type: string }> = {
  '/admin': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/admin/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/admin/admin.js': { file: 'admin.js', type: 'text/javascript; charset=utf-8' },
  '/admin/admin.css': { file: 'admin.css', type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
const DEV_TOKEN_TTL_SECONDS = 8 * 3600;

/** What the page needs to mint development tokens: the API's HS256 secret and claim names (null: no dev sign-in). */
export type DevTokens = { secret: string; issuer: string | null; audience: string | null; orgClaim: string; roleClaim: string } | null;

/** Every answer under /admin, files and JSON alike, carries the security headers. */
function send(res: ServerResponse, status: number, type: string, body: Buffer | string, extra: Record<string, string> = {}, head = false): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
  res.end(head ? undefined : body);
}
function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body), extra);
}

export function adminPage(devTokens: DevTokens): NodeMiddleware {
  const files = new Map(Object.entries(ASSETS).map(([route, a]) => [route, { body: fs.readFileSync(path.join(DIR, a.file)), type: a.type }]));
  return async (req, res, next) => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/admin' && !url.startsWith('/admin/')) return next();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(res, 405, { error: `${req.method} is not allowed on ${url}; use GET` }, { allow: 'GET, HEAD' });
    }
    if (url === '/admin/dev-tokens') {
      if (!devTokens) {
        return sendJson(res, 404, { error: 'development sign-in is off (ADMIN_DEV_TOKENS=on with an HS256 JWT key turns it on, outside production)' });
      }
      const opts = { ...devTokens, ttlSeconds: DEV_TOKEN_TTL_SECONDS };
      const logins = await Promise.all(EXAMPLE_LOGINS.map(async (l) => ({ ...l, token: await mintLoginToken(l, opts) })));
      return sendJson(res, 200, { expiresInSeconds: DEV_TOKEN_TTL_SECONDS, logins }, { 'cache-control': 'no-store' });
    }
    const f = files.get(url);
    if (!f) return sendJson(res, 404, { error: `no such admin page: ${url}` });
    send(res, 200, f.type, f.body, { 'cache-control': 'no-cache' }, req.method === 'HEAD');
  };
}
