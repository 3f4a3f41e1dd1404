// Cache invalidation, for real: worker processes (killed with SIGKILL too) deliver queued tags to a
// loopback HTTP sink that records what it got, and to the Redis on 127.0.0.1:6379.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { cfg, startWorker as startWorkerAsItsRole, stop, waitFor, withClient, type Proc } from './helpers.ts';
import { httpSink } from '../worker/sinks/http.ts';

const RUN = randomUUID().slice(0, 8); // every tag, key and table this file creates carries it

type SinkServer = {
  url: string;
  got: Map<string, number>; // tag → times delivered
  requests: number;
  status: number; // what the next requests answer
  delayMs: number;
  rejectTag?: string; // a request holding this tag is answered 400 (a tag the endpoint refuses)
  onDelivered?: (tags: string[]) => void; // runs after a 2xx batch is recorded, before it is answered
  close: () => Promise<void>;
};

/** A purge endpoint on a loopback port that records every tag POSTed to it (only answered 2xx counts). */
async function sinkServer(): Promise<SinkServer> {
  const s: SinkServer = { url: '', got: new Map(), requests: 0, status: 200, delayMs: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      s.requests += 1;
      const status = s.rejectTag && (JSON.parse(body) as { tags: string[] }).tags.includes(s.rejectTag) ? 400 : s.status;
      setTimeout(() => {
        if (status >= 200 && status < 300) {
          const tags = (JSON.parse(body) as { tags: string[] }).tags;
          for (const tag of tags) s.got.set(tag, (s.got.get(tag) ?? 0) + 1);
          s.onDelivered?.(tags);
        }
        res.writeHead(status, { 'content-type': 'application/json' }).end(status < 300 ? '{"ok":true}' : '{"error":"sink says no"}');
      }, s.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('sink server has no address');
  s.url = `http://127.0.0.1:${addr.port}/purge`;
  s.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return s;
}

/** The example's worker as npm start runs it: logged in as ballast_worker_login (helpers.ts startWorker). */
function startWorker(env: Record<string, string>): Proc {
  return startWorkerAsItsRole({ LOG_LEVEL: 'info', WORKER_CONCURRENCY: '5', INVALIDATION_POLL_MS: '50', ...env });
}

const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  withClient(cfg.rootUrl, async (c) => (await c.query<T>(sql, params)).rows);

/** Rows of this run still waiting in the queue or the inbox. */
async function pendingCount(prefix: string): Promise<number> {
  const [r] = await q<{ n: number }>(
    `select (select count(*) from ballast.cache_invalidation_queue where processed_at is null and tag like $1)
          + (select count(*) from ballast.cache_invalidation_inbox i where exists (select 1 from unnest(i.tags) t where t like $1)) as n`,
    [`${prefix}%`]);
  return Number(r.n);
}

async function cleanup(): Promise<void> {
  await q(`delete from ballast.cache_invalidation_queue where tag like $1`, [`%${RUN}%`]);
  await q(`delete from ballast.cache_invalidation_dead_letters where tag like $1`, [`%${RUN}%`]);
  await q(`delete from ballast.cache_invalidation_inbox i where exists (select 1 from unnest(i.tags) t where t like $1)`, [`%${RUN}%`]);
  // jobs left locked by killed workers, and the wake-up / cron jobs of the workers this file started
  await q(`delete from ballast_worker._private_jobs where task_id in
             (select id from ballast_worker._private_tasks where identifier = 'ballast_deliver_cache_invalidations')`);
}

describe('cache invalidation delivery', () => {
  let sink: SinkServer;
  before(async () => {
    sink = await sinkServer();
    await cleanup();
  });
  after(async () => {
    await cleanup();
    await sink.close();
  });

  it('rejects bad input with a specific SQLSTATE and enqueues nothing', async () => {
    const before = await pendingCount(`%${RUN}`);
    const cases: [string, unknown[], string][] = [
      ['select ballast.enqueue_cache_invalidation($1)', [''], '22023'],
      ['select ballast.enqueue_cache_invalidation($1)', [`bad-${RUN}:` + 'x'.repeat(520)], '22023'],
      ['select ballast.enqueue_cache_invalidation($1)', [null], '22004'],
      ['select ballast.enqueue_cache_invalidation($1)', [`bad-${RUN}:a\nb`], '22023'],
      ['select ballast.enqueue_cache_invalidation($1)', [`bad-${RUN}:a b`], '22023'],
      ['select ballast.enqueue_cache_invalidation($1)', [`bad-${RUN}:a,b`], '22023'],
      ['select ballast.enqueue_cache_invalidation($1, $2)', [`bad-${RUN}:window`, -1], '22023'],
      ['select * from ballast.drain_cache_invalidation_queue($1, $2)', [0, 30], '22023'],
      ['select * from ballast.drain_cache_invalidation_queue($1, $2)', [-5, 30], '22023'],
      ['select * from ballast.drain_cache_invalidation_queue($1, $2)', [10, 0], '22023'],
      [`select ballast.invalidate_on_change('ballast.cache_invalidation_dead_letters', array['dl:{no_such_column}'])`, [], '42703'],
    ];
    for (const [sql, params, code] of cases) {
      await assert.rejects(q(sql, params), (e: { code?: string; message: string }) => {
        assert.equal(e.code, code, `${sql} ${JSON.stringify(params).slice(0, 60)}: ${e.message}`);
        return true;
      });
    }
    assert.equal(await pendingCount(`%${RUN}`), before, 'nothing enqueued by the rejected calls');
    const [reg] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_triggers
                                          where tbl = 'ballast.cache_invalidation_dead_letters'::regclass`);
    assert.equal(reg.n, 0, 'the rejected registration left no trace');
  });

  it('delivers every tag at least once while the worker is killed with SIGKILL 20 times', async (t) => {
    const prefix = `kill-${RUN}:`;
    const total = 50_000;
    sink.got.clear();
    sink.status = 200;
    sink.delayMs = 5;
    await q(`insert into ballast.cache_invalidation_queue (tag) select $1 || g from generate_series(1, $2::int) g`, [prefix, total]);
    const env = { INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_BATCH_SIZE: '500',
      INVALIDATION_LEASE_SECONDS: '2', INVALIDATION_SINK_TIMEOUT_MS: '1000' };
    let received = 0; // distinct tags of this test that reached the sink
    let kills = 0;
    try {
      while (kills < 20) {
        const worker = startWorker(env);
        const start = received;
        const step = 800 + Math.floor(Math.random() * 1200); // kill after a random share of the drain
        // The sink kills the worker itself, with the batch that crossed the step recorded but not
        // answered: on a fast machine polling from here would let the worker drain everything first.
        sink.onDelivered = (tags) => {
          for (const tag of tags) if (tag.startsWith(prefix) && sink.got.get(tag) === 1) received += 1;
          if (received - start >= step && worker.proc.exitCode === null) worker.proc.kill('SIGKILL');
        };
        const code = await Promise.race([worker.exited,
          new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 60_000).unref())]);
        assert.ok(code !== 'late' && worker.proc.signalCode === 'SIGKILL',
          `worker ${kills + 1} was to be killed after ${step} more tags; it delivered ${received - start} (exit ${worker.proc.exitCode}): ${worker.output()}`);
        kills += 1;
      }
    } finally {
      sink.onDelivered = undefined;
    }
    const midway = received;
    assert.ok(midway < total, `the drain was still running at the 20th kill (${midway} of ${total} delivered)`);
    const last = startWorker(env);
    try {
      await waitFor('the last worker to drain the queue', async () => ((await pendingCount(prefix)) === 0 ? true : undefined), 120_000);
    } finally {
      assert.equal(await stop(last), 0, last.output());
    }
    const missing: string[] = [];
    for (let i = 1; i <= total; i++) if (!sink.got.has(prefix + i)) missing.push(prefix + i);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} tags never reached the sink`);
    const dupTags = [...sink.got.entries()].filter(([k, n]) => k.startsWith(prefix) && n > 1);
    const extra = dupTags.reduce((a, [, n]) => a + n - 1, 0);
    t.diagnostic(`${kills} kills; ${total} tags delivered; ${dupTags.length} tags delivered more than once (${extra} extra deliveries, ${(100 * extra / total).toFixed(1)}%)`);
    const [dead] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
    assert.equal(dead.n, 0, 'no dead letters: a killed worker is not a failed delivery');
  });

  it('backs off on 500s, dead-letters after max_retries, opens the circuit breaker and recovers', async () => {
    const prefix = `fail-${RUN}:`;
    sink.status = 500;
    sink.delayMs = 0;
    const requestsBefore = sink.requests;
    const worker = startWorker({ INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_BATCH_SIZE: '100',
      INVALIDATION_BACKOFF_BASE_MS: '300', INVALIDATION_BACKOFF_MAX_MS: '5000', INVALIDATION_BREAKER_FAILURES: '3',
      INVALIDATION_BREAKER_COOLDOWN_MS: '1500' });
    try {
      await q(`insert into ballast.cache_invalidation_queue (tag, max_retries) select $1 || g, 3 from generate_series(1, 5) g`, [prefix]);
      // watch one row: each failure raises retry_count and pushes next_attempt_at out twice as far
      const seen = new Map<number, { next: number; error: string }>();
      await waitFor('5 dead letters', async () => {
        const [row] = await q<{ retry_count: number; next: Date; last_error: string | null }>(
          `select retry_count, next_attempt_at as next, last_error from ballast.cache_invalidation_queue where tag = $1`, [`${prefix}1`]);
        if (row && row.retry_count > 0 && row.last_error && !seen.has(row.retry_count)) {
          seen.set(row.retry_count, { next: row.next.getTime(), error: row.last_error });
        }
        const [d] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
        return d.n === 5 ? true : undefined;
      }, 30_000);
      assert.ok(seen.has(1) && seen.has(2), `saw retry_count 1 and 2 on the way: ${JSON.stringify([...seen])}`);
      assert.match(seen.get(1)!.error, /answered 500/);
      const gap = seen.get(2)!.next - seen.get(1)!.next;
      assert.ok(gap >= 2 * 300 - 50, `the second retry waits twice the first (next_attempt_at moved ${gap} ms, want ≥ ~600)`);
      const dead = await q<{ retry_count: number; last_error: string }>(
        `select retry_count, last_error from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
      assert.ok(dead.every((d) => d.retry_count === 3 && /answered 500/.test(d.last_error)), JSON.stringify(dead));
      const used = sink.requests - requestsBefore;
      assert.ok(used <= 6, `no hot loop: ${used} requests for 5 tags with 3 retries in one batch`);
      await waitFor('the breaker to open', async () => (/circuit breaker open for sink http/.test(worker.output()) ? true : undefined));

      // the sink is back: the next probe after the cooldown closes the breaker and the tags flow again
      sink.status = 200;
      await q(`insert into ballast.cache_invalidation_queue (tag) values ($1), ($2)`, [`${prefix}recover-a`, `${prefix}recover-b`]);
      await waitFor('the breaker to close', async () => (/circuit breaker closed for sink http/.test(worker.output()) ? true : undefined), 15_000);
      await waitFor('the new tags to arrive', async () => (sink.got.has(`${prefix}recover-a`) && sink.got.has(`${prefix}recover-b`) ? true : undefined));
      const [requeued] = await q<{ n: number }>(
        `select ballast.requeue_cache_invalidation_dead_letters(array(select id from ballast.cache_invalidation_dead_letters where tag like $1)) as n`, [`${prefix}%`]);
      assert.equal(requeued.n, 5);
      await waitFor('the requeued dead letters to arrive', async () =>
        ([1, 2, 3, 4, 5].every((i) => sink.got.has(`${prefix}${i}`)) ? true : undefined));
    } finally {
      assert.equal(await stop(worker), 0, worker.output());
    }
  });

  it('treats a sink that does not answer within the timeout as a failure', async () => {
    const prefix = `slow-${RUN}:`;
    sink.status = 200;
    sink.delayMs = 1500;
    const worker = startWorker({ INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_SINK_TIMEOUT_MS: '200',
      INVALIDATION_LEASE_SECONDS: '1', INVALIDATION_BACKOFF_BASE_MS: '100' });
    try {
      await q(`insert into ballast.cache_invalidation_queue (tag, max_retries) values ($1, 2)`, [`${prefix}1`]);
      const [dead] = await waitFor('the slow tag to become a dead letter', async () => {
        const r = await q<{ last_error: string; retry_count: number }>(
          `select last_error, retry_count from ballast.cache_invalidation_dead_letters where tag = $1`, [`${prefix}1`]);
        return r.length ? r : undefined;
      }, 20_000);
      assert.equal(dead.retry_count, 2);
      assert.match(dead.last_error, /within 200 ms/);
    } finally {
      sink.delayMs = 0;
      assert.equal(await stop(worker), 0, worker.output());
    }
  });

  it('turns table changes into tags through invalidate_on_change and delivers them to HTTP and log at once', async () => {
    const schema = `test_invalidation_${RUN.replace(/-/g, '')}`;
    await q(`create schema ${schema}`);
    try {
      await q(`create table ${schema}.funds (id bigint primary key, org_id int not null, size numeric not null default 0)`);
      await q(`insert into ${schema}.funds select g, g % 7, 0 from generate_series(1, 3000) g`);
      await q(`select ballast.invalidate_on_change('${schema}.funds', array['f-${RUN}:{id}', 'o-${RUN}:{org_id}', 'all-${RUN}'], 1000)`);
      sink.got.clear();
      sink.status = 200;
      const worker = startWorker({ INVALIDATION_SINKS: 'http,log', INVALIDATION_HTTP_URL: sink.url });
      try {
        await q(`update ${schema}.funds set size = size + 1 where id = 42`);
        await q(`update ${schema}.funds set org_id = 100 where id = 43`); // moves the fund: both orgs' tags
        await waitFor('the single-row tags', async () =>
          ([`f-${RUN}:42`, `o-${RUN}:0`, `f-${RUN}:43`, `o-${RUN}:1`, `o-${RUN}:100`, `all-${RUN}`].every((x) => sink.got.has(x)) ? true : undefined));
        sink.got.clear();
        await q(`update ${schema}.funds set size = size + 1`); // 3000 rows: fund tags collapse, 8 org tags do not
        await waitFor('the bulk update tags', async () => (sink.got.has(`f-${RUN}:`) ? true : undefined));
        await waitFor('the queue to empty', async () => ((await pendingCount(`%${RUN}`)) === 0 ? true : undefined));
        // Only this test's tags: a request the slow-sink test timed out on may still land after sink.got.clear().
        const bulk = [...sink.got.keys()].filter((k) => /^(f|o|all)-/.test(k)).sort();
        assert.deepEqual(bulk, [`all-${RUN}`, `f-${RUN}:`, ...[0, 1, 2, 3, 4, 5, 6, 100].map((o) => `o-${RUN}:${o}`)].sort(),
          'a bulk UPDATE of 3000 rows enqueues the collapsed fund tag, each org once, and the constant tag');
        assert.match(worker.output(), /invalidate \d+ cache tag\(s\)/, 'the log sink logged the same batches');
      } finally {
        assert.equal(await stop(worker), 0, worker.output());
      }
    } finally {
      await q(`select ballast.stop_invalidating('${schema}.funds')`);
      await q(`drop schema ${schema} cascade`);
    }
  });

  it('fences acks to their claim: a worker that outlives its lease loses no change', async () => {
    const prefix = `lease-${RUN}:`;
    const [one, two] = [`${prefix}1`, `${prefix}2`];
    sink.got.clear();
    sink.status = 200;
    sink.delayMs = 0;
    type Row = { id: string; attempts: number };
    // Worker A (this test, with a sink too slow for its 1 s lease) claims both tags.
    await q(`select ballast.enqueue_cache_invalidation($1), ballast.enqueue_cache_invalidation($2)`, [one, two]);
    const claimedByA = await q<Row & { tag: string }>(
      `select id, attempts, tag from ballast.drain_cache_invalidation_queue(1000, 1) where tag like $1 order by tag`, [`${prefix}%`]);
    assert.equal(claimedByA.length, 2);
    const ack = async (rows: Row[]) => (await q<{ n: number }>(
      `select ballast.ack_cache_invalidations($1::bigint[], $2::int[]) as n`, [rows.map((r) => r.id), rows.map((r) => r.attempts)]))[0].n;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // A's lease runs out; A is still sending
    // Tag 1: a new change arrives and is merged while A still holds its claim; A then acks what it sent.
    await q(`select ballast.enqueue_cache_invalidation($1)`, [one]);
    await q(`select ballast.merge_cache_invalidation_inbox()`);
    assert.equal(await ack(claimedByA.filter((r) => r.tag === one)), 1, 'A acks tag 1, the claim it still holds');
    // Tag 2: worker B claims the expired row again (with whatever else is due, for 2 s), then A acks it late.
    const claimedByB = await q<Row & { tag: string }>(
      `select id, attempts, tag from ballast.drain_cache_invalidation_queue(1000, 2) where tag like $1`, [`${prefix}%`]);
    const twoByB = claimedByB.filter((r) => r.tag === two);
    assert.equal(twoByB.length, 1, 'B claims the row whose lease ran out');
    assert.equal(await ack(claimedByA.filter((r) => r.tag === two)), 0, 'A\'s ack of a row B has claimed since acks nothing');
    const [held] = await q<{ leased: boolean }>(`select leased_until > now() as leased from ballast.cache_invalidation_queue where id = $1`, [twoByB[0].id]);
    assert.equal(held.leased, true, 'the row stays B\'s');
    assert.equal(await ack(twoByB), 1, 'B acks its own claim');
    // The change to tag 1 that arrived after A's claim must still reach the sink.
    const worker = startWorker({ INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url });
    try {
      await waitFor('the change that arrived during A\'s delivery to reach the sink', async () => (sink.got.has(one) ? true : undefined), 10_000);
      assert.equal(await pendingCount(prefix), 0);
    } finally {
      assert.equal(await stop(worker), 0, worker.output());
    }
  });

  it('isolates a tag the sink refuses (400): the other 999 of its batch go through at once', async () => {
    const prefix = `poison-${RUN}:`;
    const poison = `${prefix}500`;
    sink.got.clear();
    sink.status = 200;
    sink.delayMs = 0;
    sink.rejectTag = poison;
    const requestsBefore = sink.requests;
    await q(`insert into ballast.cache_invalidation_queue (tag) select $1 || g from generate_series(1, 1000) g`, [prefix]);
    const worker = startWorker({ INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_BATCH_SIZE: '1000',
      INVALIDATION_BREAKER_FAILURES: '2' });
    try {
      await waitFor('999 tags delivered and the poison tag dead-lettered', async () => {
        const [d] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
        return d.n === 1 && (await pendingCount(prefix)) === 0 ? true : undefined;
      }, 5_000);
      const got = [...sink.got.keys()].filter((k) => k.startsWith(prefix));
      assert.equal(got.length, 999);
      assert.ok(!sink.got.has(poison));
      const dead = await q<{ tag: string; retry_count: number; last_error: string }>(
        `select tag, retry_count, last_error from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
      assert.deepEqual(dead.map((d) => [d.tag, d.retry_count]), [[poison, 1]], 'only the poison tag, after one failure');
      assert.match(dead[0].last_error, /answered 400/);
      const [retried] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_queue where tag like $1 and retry_count > 0`, [`${prefix}%`]);
      assert.equal(retried.n, 0, 'the other tags never failed');
      const used = sink.requests - requestsBefore;
      assert.ok(used <= 25, `bisecting 1000 tags for one bad one took ${used} requests (want about 2·log2(1000))`);
      assert.doesNotMatch(worker.output(), /circuit breaker open/, 'a refused tag does not open the breaker');
    } finally {
      sink.rejectTag = undefined;
      assert.equal(await stop(worker), 0, worker.output());
    }
  });

  it('a sink that refuses every tag (a wrong endpoint) fails the batch instead of dead-lettering it', async () => {
    const prefix = `refuse-all-${RUN}:`;
    sink.status = 400;
    sink.delayMs = 0;
    await q(`insert into ballast.cache_invalidation_queue (tag) select $1 || g from generate_series(1, 100) g`, [prefix]);
    const worker = startWorker({ INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_BATCH_SIZE: '100',
      INVALIDATION_BACKOFF_BASE_MS: '60000' });
    try {
      await waitFor('the batch to fail once', async () => {
        const [r] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_queue
                                            where tag like $1 and retry_count = 1 and last_error ~ 'refused more than 16 tags'`, [`${prefix}%`]);
        return r.n === 100 ? true : undefined;
      }, 10_000);
      const [d] = await q<{ n: number }>(`select count(*)::int as n from ballast.cache_invalidation_dead_letters where tag like $1`, [`${prefix}%`]);
      assert.equal(d.n, 0, 'no tag became a dead letter');
    } finally {
      sink.status = 200;
      assert.equal(await stop(worker), 0, worker.output());
      await q(`delete from ballast.cache_invalidation_queue where tag like $1`, [`${prefix}%`]);
    }
  });

  it('lets two worker processes drain the same queue at once', async (t) => {
    const prefix = `two-${RUN}:`;
    sink.got.clear();
    sink.status = 200;
    sink.delayMs = 2;
    const env = { INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url, INVALIDATION_BATCH_SIZE: '200' };
    const a = startWorker(env);
    const b = startWorker(env);
    try {
      await q(`insert into ballast.cache_invalidation_queue (tag) select $1 || g from generate_series(1, 10000) g`, [prefix]);
      await waitFor('both workers to drain the queue', async () => ((await pendingCount(prefix)) === 0 ? true : undefined), 60_000);
    } finally {
      assert.equal(await stop(a), 0, a.output());
      assert.equal(await stop(b), 0, b.output());
      sink.delayMs = 0;
    }
    const got = [...sink.got.keys()].filter((k) => k.startsWith(prefix));
    assert.equal(got.length, 10_000);
    const [claims] = await q<{ multi: number }>(`select count(*) filter (where attempts > 1)::int as multi from ballast.cache_invalidation_queue where tag like $1`, [`${prefix}%`]);
    t.diagnostic(`rows claimed more than once: ${claims.multi}`);
  });
});

describe('cache invalidation to Redis', () => {
  let redis: Redis;
  const keyPrefix = `ballast-test-${RUN}:`;
  before(async () => {
    redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
    } catch (e) {
      throw new Error(`Redis at 127.0.0.1:6379 is unreachable (${(e as Error).message}); these tests need it. Start it: ` +
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no');
    }
  });
  after(async () => {
    if (redis.status === 'ready') {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length) await redis.unlink(...keys);
    }
    redis.disconnect();
    await cleanup();
  });

  it('deletes the keys recorded under each tag and leaves the others', async () => {
    const tag = `fund-${RUN}:1`;
    const tagSet = `${keyPrefix}tag:${tag}`;
    await redis.set(`${keyPrefix}page:/funds/1`, 'cached page');
    await redis.set(`${keyPrefix}api:fund:1`, 'cached json');
    await redis.set(`${keyPrefix}page:/funds/2`, 'other fund');
    await redis.sadd(tagSet, `${keyPrefix}page:/funds/1`, `${keyPrefix}api:fund:1`);
    await redis.sadd(`${keyPrefix}tag:fund-${RUN}:2`, `${keyPrefix}page:/funds/2`);
    const worker = startWorker({ INVALIDATION_SINKS: 'redis', INVALIDATION_REDIS_URL: 'redis://127.0.0.1:6379',
      INVALIDATION_REDIS_TAG_PREFIX: `${keyPrefix}tag:` });
    try {
      const [r] = await q<{ queued: boolean }>('select ballast.enqueue_cache_invalidation($1) as queued', [tag]);
      assert.equal(r.queued, true);
      await waitFor('the tag to be delivered', async () => ((await pendingCount(tag)) === 0 ? true : undefined));
      assert.equal(await redis.exists(`${keyPrefix}page:/funds/1`, `${keyPrefix}api:fund:1`), 0, 'both keys of the tag are gone');
      assert.equal(await redis.scard(tagSet), 0, 'the tag set no longer lists them');
      assert.equal(await redis.get(`${keyPrefix}page:/funds/2`), 'other fund', 'a key of another tag stays');
    } finally {
      assert.equal(await stop(worker), 0, worker.output());
    }
  });
});

describe('HTTP sink', () => {
  it('does not follow a redirect, so the Authorization header goes nowhere else', async () => {
    const seen: { path: string; authorization?: string }[] = [];
    const server = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      req.on('end', () => {
        if (req.url === '/purge') res.writeHead(307, { location: '/elsewhere' }).end();
        else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const sink = httpSink({ url: `http://127.0.0.1:${port}/purge`, timeoutMs: 2000, authorization: 'Bearer s3cret' });
      await assert.rejects(sink.deliver([`redirect-${RUN}:1`]), (e: Error) => {
        assert.match(e.message, /answered 307/);
        assert.match(e.message, /not followed/);
        assert.notEqual(e.name, 'TagsRejectedError', 'a redirect is a failed delivery, retried, not a refused tag');
        return true;
      });
      assert.deepEqual(seen.map((x) => x.path), ['/purge'], 'nothing was sent to the redirect target');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
