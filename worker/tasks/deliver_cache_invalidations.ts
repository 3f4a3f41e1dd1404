// ballast_deliver_cache_invalidations: drains ballast.cache_invalidation_queue to the configured sinks.
// One run claims batches (drain_cache_invalidation_queue: merge the trigger inbox, then claim with a lease,
// skip locked), delivers each batch to every sink and acks it, or fails it (backoff, dead letters after
// max_retries). Acks and failures name the claim (id and attempts), so a run that outlived its lease
// cannot ack a row another run has claimed since. A tag a sink refuses for good (an HTTP 4xx) is found
// by halving the batch and dead-lettered alone; the rest of its batch is acked at once, and the circuit
// breaker does not count it. When the queue is empty it polls every INVALIDATION_POLL_MS until
// INVALIDATION_RUN_SECONDS are up; the crontab (worker/crontab.ts) starts a run every minute and run() one at startup, so a poller
// is always there and the write path never has to wake anyone. Several runs and several worker processes
// may drain at once. Delivery is at least once: a batch whose ack is lost (crash, lease expiry) is
// delivered again.
import pino from 'pino';
import type { PoolClient } from 'pg';
import type { JobHelpers, Task } from 'graphile-worker';
import { CircuitBreaker } from '../circuit_breaker.ts';
import { invalidationConfig, type InvalidationConfig } from '../invalidation_config.ts';
import { TASKS } from '../names.ts';
import { TagsRejectedError, type Sink } from '../sinks/sink.ts';
import { httpSink } from '../sinks/http.ts';
import { redisSink } from '../sinks/redis.ts';
import { logSink } from '../sinks/log.ts';

const PROBE_BATCH = 10; // rows a half-open breaker's probe delivery carries
// A sink that refuses more tags of one batch than this, each on its own, is refusing the request, not the
// tags (a wrong endpoint or body format): the batch fails and is retried, rather than all becoming dead letters.
const MAX_REFUSED_PER_BATCH = 16;

// Set by run() (configureDelivery); in an app's own runner, read from the environment at the first run.
let settings: { config: InvalidationConfig; logger: pino.Logger } | undefined;
function current(): { config: InvalidationConfig; logger: pino.Logger } {
  settings ??= {
    config: invalidationConfig(process.env),
    logger: pino({ name: 'worker', level: process.env.LOG_LEVEL || 'info' }).child({ task: TASKS.deliverCacheInvalidations }),
  };
  return settings;
}

/** The sinks' settings and logger for this process's delivery runs (before the first run; run() calls it). */
export function configureDelivery(opts: { config: InvalidationConfig; logger: pino.Logger }): void {
  settings = { config: opts.config, logger: opts.logger.child({ task: TASKS.deliverCacheInvalidations }) };
}

// graphile-worker aborts a running job only after its graceful-shutdown grace period (5 s); a delivery run
// that is merely polling should stop at once. run() calls stopDeliveryPolling() when its runner begins a
// graceful shutdown; an app's own runner may do the same (runner.events.on('pool:gracefulShutdown', …)).
// Not a process signal handler: a library must not change what SIGTERM does to the process it is in.
let shutdown = new AbortController();

/** Ends every delivery run's polling now (a batch in flight is still acked); runs started later poll again. */
export function stopDeliveryPolling(): void {
  shutdown.abort();
  shutdown = new AbortController();
}

type Target = { sink: Sink; breaker: CircuitBreaker };
type Claimed = { id: string; tag: string; attempts: number };

let targets: Target[] | undefined;
function getTargets(): Target[] {
  const { config, logger } = current();
  targets ??= config.sinks.map((name) => {
    const sink = name === 'http' ? httpSink({ url: config.httpUrl!, timeoutMs: config.sinkTimeoutMs, authorization: config.httpAuthorization })
      : name === 'redis' ? redisSink({ url: config.redisUrl, tagPrefix: config.redisTagPrefix, timeoutMs: config.sinkTimeoutMs })
      : logSink(logger);
    const breaker = new CircuitBreaker({
      name, failureThreshold: config.breakerFailures, cooldownMs: config.breakerCooldownMs,
      onChange: ({ from, to, failures, retryAt }) => {
        const info = { sink: name, from, to, failures, retryAt: retryAt ? new Date(retryAt).toISOString() : undefined };
        if (to === 'open') logger.warn(info, `circuit breaker open for sink ${name}: no deliveries until ${info.retryAt}`);
        else if (to === 'half_open') logger.info(info, `circuit breaker half-open for sink ${name}: probing`);
        else logger.info(info, `circuit breaker closed for sink ${name}: delivering again`);
      },
    });
    return { sink, breaker };
  });
  return targets;
}

/** Closes the sinks' connections (Redis); for tests and shutdown. */
export async function closeInvalidationSinks(): Promise<void> {
  const t = targets;
  targets = undefined;
  await Promise.all((t ?? []).map((x) => x.sink.close()));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Whether every sink may take a delivery now: 'go', 'probe' (some breaker is half-open: one small batch),
 * or the time to wait until (an open breaker; nothing is claimed meanwhile, so retries are not burnt).
 */
function gate(ts: Target[]): { go: true; probes: Target[] } | { go: false; until: number } {
  const probes: Target[] = [];
  let until = 0;
  for (const t of ts) {
    const s = t.breaker.state;
    if (s === 'closed') continue;
    if (s === 'open' && Date.now() < t.breaker.retryAt) until = Math.max(until, t.breaker.retryAt);
    else if (s === 'half_open') until = Math.max(until, Date.now() + 50); // a probe is in flight
    else probes.push(t);
  }
  if (until) return { go: false, until };
  return { go: true, probes };
}

/** What one sink made of a batch: delivered, with the tags it refused for good; or failed (retry the batch). */
type Outcome = { ok: true; rejected: Map<string, string> } | { ok: false; error: string };

/**
 * Delivers the tags; when the sink refuses the request for good (TagsRejectedError), halves it until the
 * refused tags stand alone, so one bad tag costs its batch about 2·log2(n) requests instead of stalling it.
 * Halves go one after the other (no burst on a sink that is refusing things). Any other error ends it.
 */
async function bisect(sink: Sink, tags: string[], rejected: Map<string, string>): Promise<void> {
  try {
    await sink.deliver(tags);
  } catch (e) {
    if (!(e instanceof TagsRejectedError)) throw e;
    if (tags.length === 1) {
      rejected.set(tags[0], e.message);
      if (rejected.size > MAX_REFUSED_PER_BATCH) {
        throw new Error(`${sink.name} sink refused more than ${MAX_REFUSED_PER_BATCH} tags of one batch one by one, so it refuses the request, not the tags: ${e.message}`);
      }
      return;
    }
    const mid = Math.ceil(tags.length / 2);
    await bisect(sink, tags.slice(0, mid), rejected);
    await bisect(sink, tags.slice(mid), rejected);
  }
}

async function deliverTo(t: Target, tags: string[]): Promise<Outcome> {
  if (t.breaker.acquire() === false) return { ok: false, error: `${t.sink.name} sink: circuit breaker open` };
  const rejected = new Map<string, string>();
  try {
    await bisect(t.sink, tags, rejected);
  } catch (e) {
    t.breaker.failure();
    return { ok: false, error: (e as Error).message };
  }
  t.breaker.success(); // it answered: a refused tag says nothing about the sink being down
  return { ok: true, rejected };
}

async function deliver(helpers: JobHelpers, ts: Target[], rows: Claimed[]): Promise<void> {
  const { config, logger } = current();
  const tags = [...new Set(rows.map((r) => r.tag))];
  const outcomes = await Promise.all(ts.map((t) => deliverTo(t, tags)));
  const errors = outcomes.flatMap((o) => (o.ok ? [] : [o.error]));
  const rejected = new Map<string, string>(); // tag → why, from every sink that refused it
  for (const o of outcomes) if (o.ok) for (const [tag, why] of o.rejected) rejected.set(tag, rejected.has(tag) ? `${rejected.get(tag)}; ${why}` : why);
  const refused = rows.filter((r) => rejected.has(r.tag));
  const rest = rows.filter((r) => !rejected.has(r.tag));
  // Each row with the attempts its claim returned: a row claimed again since (our lease ran out) is not ours.
  const claims = (rs: Claimed[]) => [rs.map((r) => r.id), rs.map((r) => r.attempts)];
  await helpers.withPgClient(async (c: PoolClient) => {
    const byReason = new Map<string, Claimed[]>(); // one call per distinct error (at most MAX_REFUSED_PER_BATCH per sink)
    for (const r of refused) {
      const why = rejected.get(r.tag)!;
      if (!byReason.has(why)) byReason.set(why, []);
      byReason.get(why)!.push(r);
    }
    for (const [why, rs] of byReason) {
      await c.query('select * from ballast.fail_cache_invalidations($1::bigint[], $2::int[], $3, $4, $5, permanent => true)',
        [...claims(rs), why, config.backoffBaseMs, config.backoffMaxMs]);
    }
    if (refused.length) logger.error({ tags: refused.map((r) => r.tag).slice(0, 20), count: refused.length, error: rejected.get(refused[0].tag) },
      `${refused.length} cache tag(s) refused by a sink moved to ballast.cache_invalidation_dead_letters`);
    if (rest.length === 0) return;
    if (errors.length === 0) {
      await c.query('select ballast.ack_cache_invalidations($1::bigint[], $2::int[])', claims(rest));
      logger.debug({ tags: tags.length - rejected.size, rows: rest.length }, 'delivered');
      return;
    }
    const r = await c.query<{ rescheduled: number; dead_lettered: number; next_attempt_at: Date | null }>(
      'select * from ballast.fail_cache_invalidations($1::bigint[], $2::int[], $3, $4, $5)',
      [...claims(rest), errors.join('; '), config.backoffBaseMs, config.backoffMaxMs]);
    const { rescheduled, dead_lettered, next_attempt_at } = r.rows[0];
    logger.warn({ rows: rest.length, rescheduled, deadLettered: dead_lettered, nextAttemptAt: next_attempt_at, errors }, 'delivery failed');
    if (dead_lettered > 0) logger.error({ deadLettered: dead_lettered, errors }, `${dead_lettered} cache tag(s) moved to ballast.cache_invalidation_dead_letters`);
  });
}

async function claim(helpers: JobHelpers, size: number): Promise<Claimed[]> {
  const { config } = current();
  return helpers.withPgClient(async (c: PoolClient) =>
    (await c.query<Claimed>('select id, tag, attempts from ballast.drain_cache_invalidation_queue($1, $2)', [size, config.leaseSeconds])).rows);
}

export const deliver_cache_invalidations: Task = async (_payload, helpers) => {
  const { config, logger } = current();
  const ts = getTargets();
  const signal = AbortSignal.any([helpers.abortSignal, shutdown.signal]);
  const deadline = Date.now() + config.runSeconds * 1000;
  let delivered = 0;
  while (!signal.aborted && Date.now() < deadline) {
    const g = gate(ts);
    if (!g.go) {
      await sleep(Math.min(g.until, deadline) - Date.now(), signal);
      continue;
    }
    if (g.probes.length) {
      // One small batch tells whether the sink is back; the other sinks take it too (all-or-nothing ack).
      const rows = await claim(helpers, Math.min(PROBE_BATCH, config.batchSize));
      if (rows.length === 0) {
        await sleep(config.pollMs, signal);
        continue;
      }
      await deliver(helpers, ts, rows);
      delivered += rows.length;
      continue;
    }
    // Up to `parallel` batches in flight; each loop stops at an empty or short batch, or a breaker.
    const counts = await Promise.all(Array.from({ length: config.parallel }, async () => {
      let n = 0;
      while (!signal.aborted && Date.now() < deadline) {
        const rows = await claim(helpers, config.batchSize);
        if (rows.length === 0) break;
        await deliver(helpers, ts, rows);
        n += rows.length;
        if (rows.length < config.batchSize || ts.some((t) => t.breaker.state !== 'closed')) break;
      }
      return n;
    }));
    const n = counts.reduce((a, b) => a + b, 0);
    delivered += n;
    if (n === 0) await sleep(config.pollMs, signal);
  }
  if (delivered > 0) logger.info({ delivered }, `delivered ${delivered} cache tag(s)`);
};
