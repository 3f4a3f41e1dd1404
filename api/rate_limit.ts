// Cluster-safe rate limiting without Redis: tokens come from a bucket in PostgreSQL
// (ballast.rate_limit_take, an UNLOGGED table), so every API process shares one limit. The bucket is
// '<operation class>:<subject>' where the subject is the verified JWT subject, else the client's
// address (IPv6 reduced to its /64). Limits per class come from RATE_LIMIT_QUERY / RATE_LIMIT_MUTATION.
//
// One bucket row taken by every request of a busy subject is a hot row: concurrent requests queue on
// its lock. So a process reserves tokens in batches: a subject's first request takes 1 token; each time
// a reservation is used up within RESERVATION_MS the next one is twice as big (at most a tenth of the
// capacity, and MAX_BATCH); concurrent requests wait for the one take in flight instead of each making
// their own. Tokens always come out of the shared bucket first, so the processes together never allow
// more than the bucket gives; a reservation not used within RESERVATION_MS is dropped (the subject went
// quiet) and the next one starts at 1 again. When a batch is refused, the tokens that are left are taken
// instead, so nothing is stranded at the end of a burst.
import type pg from 'pg';
import type { OperationClass, RateLimit } from './config.ts';

export type Take = { allowed: boolean; remaining: number; retryAfterMs: number };

export function bucketName(cls: OperationClass, subject: { sub?: string; address: string }): string {
  return sub(subject) ? `${cls}:sub:${subject.sub}` : `${cls}:ip:${subject.address}`.slice(0, 200);
}
function sub(s: { sub?: string }): boolean {
  return typeof s.sub === 'string' && s.sub !== '';
}

const RESERVATION_MS = 2000;
const MAX_BATCH = 64;
const REFUSAL_MEMORY_MS = 100; // requests that waited on a refused take are refused without asking again
const SWEEP_AT = 10_000; // reservations kept before expired ones are swept

type Reservation = {
  tokens: number; // taken from the shared bucket, not yet used by a request
  bucketRemaining: number; // what the shared bucket had left when they were taken
  expiresAt: number;
  batch: number; // size of the next take
  inflight: Promise<unknown> | null;
  waiting: number;
  refused: Take | null;
  refusedUntil: number;
};

/** The most tokens one take may reserve for a limit: a tenth of its capacity, at most MAX_BATCH. */
function maxBatch(limit: NonNullable<RateLimit>): number {
  return Math.max(1, Math.min(MAX_BATCH, Math.floor(limit.capacity / 10)));
}

export class RateLimiter {
  private readonly pool: pg.Pool;
  private readonly reservations = new Map<string, Reservation>();
  private readonly onDbTake: () => void;
  constructor(pool: pg.Pool, onDbTake: () => void = () => {}) {
    this.pool = pool;
    this.onDbTake = onDbTake;
  }

  async take(bucket: string, limit: NonNullable<RateLimit>): Promise<Take> {
    let r = this.reservations.get(bucket);
    if (!r) {
      if (this.reservations.size >= SWEEP_AT) this.sweep();
      r = { tokens: 0, bucketRemaining: 0, expiresAt: 0, batch: 1, inflight: null, waiting: 0, refused: null, refusedUntil: 0 };
      this.reservations.set(bucket, r);
    }
    for (;;) {
      const now = Date.now();
      if (r.tokens > 0 && now < r.expiresAt) {
        r.tokens -= 1;
        return { allowed: true, remaining: r.bucketRemaining + r.tokens, retryAfterMs: 0 };
      }
      if (r.refused && now < r.refusedUntil) return r.refused;
      if (!r.inflight) break;
      r.waiting += 1;
      try { await r.inflight; } catch { /* the request that made the take reports its error */ } finally { r.waiting -= 1; }
    }
    const take = this.reserve(bucket, limit, r);
    r.inflight = take;
    try {
      return await take;
    } finally {
      r.inflight = null;
    }
  }

  private async reserve(bucket: string, limit: NonNullable<RateLimit>, r: Reservation): Promise<Take> {
    const now = Date.now();
    if (r.expiresAt > 0) {
      // the last reservation was used up in time: double; it expired unused: start again at 1
      r.batch = r.tokens === 0 && now < r.expiresAt ? Math.min(maxBatch(limit), r.batch * 2) : 1;
    }
    r.tokens = 0;
    let want = Math.min(maxBatch(limit), Math.max(r.batch, r.waiting + 1));
    let t = await this.dbTake(bucket, limit, want);
    if (!t.allowed && want > 1 && t.remaining >= 1) {
      want = Math.min(want, t.remaining); // the end of a burst: take what is left
      t = await this.dbTake(bucket, limit, want);
    }
    if (!t.allowed) {
      r.refused = { allowed: false, remaining: 0, retryAfterMs: t.retryAfterMs };
      r.refusedUntil = Date.now() + Math.min(REFUSAL_MEMORY_MS, t.retryAfterMs);
      r.expiresAt = 0;
      r.batch = 1;
      return r.refused;
    }
    r.refused = null;
    r.tokens = want - 1; // one is this request's
    r.bucketRemaining = t.remaining;
    r.expiresAt = Date.now() + RESERVATION_MS;
    return { allowed: true, remaining: t.remaining + r.tokens, retryAfterMs: 0 };
  }

  /** One round trip, a prepared statement. */
  private async dbTake(bucket: string, limit: NonNullable<RateLimit>, cost: number): Promise<Take> {
    this.onDbTake();
    const res = await this.pool.query<{ allowed: boolean; remaining: number; retry_after_ms: number }>({
      name: 'ballast_rate_limit_take',
      text: 'select allowed, remaining, retry_after_ms from ballast.rate_limit_take($1, $2, $3, $4)',
      values: [bucket, limit.capacity, limit.refillPerSecond, cost],
    });
    const row = res.rows[0];
    return { allowed: row.allowed, remaining: row.remaining, retryAfterMs: row.retry_after_ms };
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, r] of this.reservations) {
      if (!r.inflight && r.waiting === 0 && now >= r.expiresAt && now >= r.refusedUntil) this.reservations.delete(k);
    }
  }
}
