// Cluster-safe rate limiting without Redis: each request takes a token from a bucket in PostgreSQL
// (ballast.rate_limit_take, an UNLOGGED table), so every API process shares one limit. The bucket is
// '<operation class>:<subject>' where the subject is the verified JWT subject, else the client's
// address (IPv6 reduced to its /64). Limits per class come from RATE_LIMIT_QUERY / RATE_LIMIT_MUTATION.
import type pg from 'pg';
import type { OperationClass, RateLimit } from './config.ts';

export type Take = { allowed: boolean; remaining: number; retryAfterMs: number };

export function bucketName(cls: OperationClass, subject: { sub?: string; address: string }): string {
  return sub(subject) ? `${cls}:sub:${subject.sub}` : `${cls}:ip:${subject.address}`.slice(0, 200);
}
function sub(s: { sub?: string }): boolean {
  return typeof s.sub === 'string' && s.sub !== '';
}

export class RateLimiter {
  private readonly pool: pg.Pool;
  constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  /** One round trip, a prepared statement: what each request pays for a cluster-wide limit. */
  async take(bucket: string, limit: NonNullable<RateLimit>, cost = 1): Promise<Take> {
    const r = await this.pool.query<{ allowed: boolean; remaining: number; retry_after_ms: number }>({
      name: 'ballast_rate_limit_take',
      text: 'select allowed, remaining, retry_after_ms from ballast.rate_limit_take($1, $2, $3, $4)',
      values: [bucket, limit.capacity, limit.refillPerSecond, cost],
    });
    const row = r.rows[0];
    return { allowed: row.allowed, remaining: row.remaining, retryAfterMs: row.retry_after_ms };
  }
}
