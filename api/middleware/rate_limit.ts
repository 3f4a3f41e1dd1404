// Rate limiting of GraphQL operations by class (query or mutation; subscriptions count as queries):
// one token per request from the bucket of the verified JWT subject, else of the client's address
// (api/rate_limit.ts). Refused → 429 with Retry-After. Runs after the JWT middleware because the
// bucket is keyed by the *verified* subject (an unverified one could drain someone else's bucket).
// If the limiter's query fails for a reason other than the database being down, the request is let
// through and the failure logged (failing open: the limiter must not become the outage).
import type { ApiConfig } from '../config.ts';
import { addressKey, clientAddress, proxyTrust } from '../client_address.ts';
import { state } from '../context.ts';
import type { DbGuard } from '../db_guard.ts';
import { sendError } from '../errors.ts';
import type { ApiMetrics } from '../metrics.ts';
import { bucketName, type RateLimiter } from '../rate_limit.ts';
import type { Middleware } from './compose.ts';

export function rateLimit(limiter: RateLimiter, config: ApiConfig, guard: DbGuard, metrics: ApiMetrics): Middleware {
  const trust = proxyTrust(config.trustProxyHops, config.trustedProxies);
  return async (req, res, next) => {
    const s = state(req);
    if (!s.graphql) return next();
    const cls = s.graphql.operationType === 'mutation' ? 'mutation' : 'query';
    const limit = config.rateLimits[cls];
    if (!limit) return next();
    const sub = typeof s.claims?.sub === 'string' ? s.claims.sub : undefined;
    const bucket = bucketName(cls, { sub, address: addressKey(clientAddress(req, trust)) });
    let take;
    try {
      take = await limiter.take(bucket, limit);
    } catch (e) {
      if (guard.observe(e) === 'unavailable') {
        return sendError(req, res, 503, 'DATABASE_UNAVAILABLE', 'the database is unavailable; retry shortly', { 'retry-after': '1' });
      }
      s.log.error({ err: e, bucket }, 'rate limiter failed; letting the request through');
      return next();
    }
    res.setHeader('ratelimit-remaining', String(take.remaining));
    if (!take.allowed) {
      metrics.rateLimited.inc({ class: cls });
      const seconds = Math.max(1, Math.ceil(take.retryAfterMs / 1000));
      return sendError(req, res, 429, 'RATE_LIMITED',
        `too many ${cls} operations: the limit is a burst of ${limit.capacity} refilled at ${limit.refillPerSecond}/s; retry in ${seconds} s`,
        { 'retry-after': String(seconds) });
    }
    await next();
  };
}
