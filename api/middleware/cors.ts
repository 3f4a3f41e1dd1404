// CORS from the allowlist CORS_ORIGINS (validated at startup, api/cors.ts). A request from a listed
// origin gets the CORS headers (preflights are answered 204 here); a request from any other origin
// is refused with 403 before it can do anything, unless it is same-origin (Ruru in development, the
// example's admin page) on a host of ALLOWED_HOSTS: the Host header is the client's word, and a
// DNS-rebinding page is "same-origin" with whatever name it resolved (null: any host, ALLOWED_HOSTS=*).
// Requests without an Origin header (servers, curl) pass untouched.
import { hostAllowed } from '../allowed_hosts.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

const ALLOW_HEADERS = 'Authorization, Content-Type, Accept, X-Request-Id, Idempotency-Key';
const EXPOSE_HEADERS = 'X-Request-Id, X-Client-Request-Id, Retry-After, RateLimit-Remaining, Idempotency-Key, Idempotent-Replayed';

export function cors(origins: string[], hosts: string[] | null = null): Middleware {
  const allowed = new Set(origins);
  const allowedHosts = hosts === null ? null : new Set(hosts);
  return async (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) return next();
    res.setHeader('vary', 'Origin');
    if (allowed.has(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('access-control-expose-headers', EXPOSE_HEADERS);
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'access-control-allow-methods': 'POST, GET, OPTIONS',
          'access-control-allow-headers': ALLOW_HEADERS,
          'access-control-max-age': '600',
          'content-length': '0',
        });
        res.end();
        return;
      }
      return next();
    }
    const host = req.headers.host;
    if (host && (allowedHosts === null || hostAllowed(host, allowedHosts)) && (origin === `http://${host}` || origin === `https://${host}`)) return next();
    sendError(req, res, 403, 'ORIGIN_NOT_ALLOWED', `origin ${JSON.stringify(origin.slice(0, 200))} is not in this server's CORS allowlist (CORS_ORIGINS)`);
  };
}
