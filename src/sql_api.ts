// Typed helpers over the kit's SQL API, for application code that holds a pg client or pool. Each is one
// statement; errors are the SQL functions' own (SQLSTATE and a message naming the bad value). Inside a
// transaction of yours, pass that transaction's client: the call joins it.
import type pg from 'pg';

/** A pg.Client, pg.PoolClient or pg.Pool. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.Client, 'query'>;

/** Seconds, or a PostgreSQL interval text ('30 seconds'). */
export type Interval = number | string;
const interval = (v: Interval | undefined) => (v === undefined ? null : typeof v === 'number' ? `${v} seconds` : v);

export type IdempotencyOutcome =
  | { outcome: 'started' }
  | { outcome: 'replay'; statusCode: number; responseBody: string | null }
  | { outcome: 'in_progress'; retryAfterSeconds: number }
  | { outcome: 'mismatch' };

/**
 * Who holds a key while the work runs: one value per request or job (a UUID, say), given to begin and
 * again to complete or release. Without one the SQL falls back to a per-session value, which behind a
 * transaction pooler (PgBouncer) other clients share: name it there.
 */
export type Holder = { holder?: string };

/**
 * Claims an idempotency key (ballast.idempotency_begin): 'started' when the caller should do the work
 * and then call idempotencyComplete (or idempotencyRelease on failure); 'replay' with the stored
 * result; 'in_progress' while another holder has it; 'mismatch' when the key was used for another request.
 */
export async function idempotencyBegin(db: Queryable, o: { scope: string; key: string; requestHash: string; ttl?: Interval; lease?: Interval } & Holder): Promise<IdempotencyOutcome> {
  const r = await db.query<{ outcome: string; status_code: number | null; response_body: string | null; retry_after_seconds: number | null }>(
    `select outcome, status_code, response_body, retry_after_seconds
       from ballast.idempotency_begin($1, $2, $3, coalesce($4::interval, interval '24 hours'), coalesce($5::interval, interval '30 seconds'), holder => $6)`,
    [o.scope, o.key, o.requestHash, interval(o.ttl), interval(o.lease), o.holder ?? null]);
  const row = r.rows[0];
  switch (row.outcome) {
    case 'replay': return { outcome: 'replay', statusCode: row.status_code!, responseBody: row.response_body };
    case 'in_progress': return { outcome: 'in_progress', retryAfterSeconds: row.retry_after_seconds ?? 1 };
    case 'mismatch': return { outcome: 'mismatch' };
    default: return { outcome: 'started' };
  }
}

/** Stores the result of a started key (ballast.idempotency_complete); later begins replay it. */
export async function idempotencyComplete(db: Queryable, o: { scope: string; key: string; statusCode: number; responseBody: string | null } & Holder): Promise<void> {
  await db.query('select ballast.idempotency_complete($1, $2, $3, $4, holder => $5)', [o.scope, o.key, o.statusCode, o.responseBody, o.holder ?? null]);
}

/** Gives a started key back without a result (ballast.idempotency_release): a retry runs the work again. */
export async function idempotencyRelease(db: Queryable, o: { scope: string; key: string } & Holder): Promise<void> {
  await db.query('select ballast.idempotency_release($1, $2, holder => $3)', [o.scope, o.key, o.holder ?? null]);
}

/** Registers a materialized view with the refresh queue (ballast.register_matview). */
export async function registerMatview(db: Queryable, o: { view: string; dependsOn: string[]; debounce?: Interval; maxDelay?: Interval }): Promise<void> {
  await db.query(
    `select ballast.register_matview($1::regclass, $2::regclass[], coalesce($3::interval, interval '30 seconds'), coalesce($4::interval, interval '5 minutes'))`,
    [o.view, o.dependsOn, interval(o.debounce), interval(o.maxDelay)]);
}

/** Asks for a refresh of a registered view (ballast.request_refresh), as its source triggers do. */
export async function requestRefresh(db: Queryable, view: string): Promise<void> {
  await db.query('select ballast.request_refresh($1::regclass)', [view]);
}

/** Queues one cache tag for the worker to deliver (ballast.enqueue_cache_invalidation); false when an equal pending tag made it redundant. */
export async function enqueueInvalidation(db: Queryable, tag: string, o: { dedupWindowMinutes?: number } = {}): Promise<boolean> {
  const r = await db.query<{ queued: boolean }>('select ballast.enqueue_cache_invalidation($1, $2) as queued', [tag, o.dedupWindowMinutes ?? 1]);
  return r.rows[0].queued;
}
