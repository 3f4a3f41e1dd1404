// idempotency: what exactly-once costs.
//   SQL, 16 clients (pgbench): begin + complete on distinct keys, against the seed's store (look the key
//     up, then insert the result: no lease, so concurrent duplicates all run). Goal ≥ 5,000 keys/s.
//   Replay lookup, 16 clients: idempotency_claim (what the API calls) on a completed key, against the same lookup as a Redis GET
//     on 127.0.0.1:6379 — what a Redis layer in front would buy — with C clients (pgbench, redis-benchmark)
//     and from Node (pg, ioredis). Goal p99 ≤ 5 ms.
//   HTTP (autocannon through a real API process): the same mutation without and with a new Idempotency-Key
//     per request (goal ≥ 0.8x; the keyed one claims, runs, stores and commits in one transaction), and a
//     replayed keyed mutation against an unkeyed one-row query (goal: the replay costs no more).
// Args: [sqlSeconds=10 (0: HTTP only)] [httpSeconds=10] [clients=16] [rounds=3 (HTTP, alternating)]. Tables live in schema bench_idempotency; the one
// mutation the API needs is a temporary function in app_public; both are dropped at the end.
import { spawn } from 'node:child_process';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import autocannon from 'autocannon';
import { $ } from 'zx';
import { ROOT } from '../../scripts/lib/config.ts';
import { percentile, report, type BenchContext, type Row } from '../lib/harness.ts';

const BODY = JSON.stringify({ data: { createOrder: { order: { id: 'WyJvcmRlcnMiLDQyXQ==', status: 'PLACED', total: '129.90' } } } });
const REPLAY_KEYS = 10_000;

export async function run(ctx: BenchContext): Promise<boolean> {
  const sqlSeconds = Number(ctx.args[0] ?? 10);
  const httpSeconds = Number(ctx.args[1] ?? 10);
  const clients = Number(ctx.args[2] ?? 16);
  const rounds = Number(ctx.args[3] ?? 3);
  const setup = `
    drop function if exists app_public.bench_idempotent_effect(text);
    drop function if exists app_public.bench_idempotent_read();
    drop function if exists app_public.bench_idempotent_effect_floor(text);
    drop schema if exists bench_idempotency cascade;
    delete from ballast.idempotency_keys where scope like 'bench-idempotency%' or key like 'bench-idempotency-http-%';
    create schema bench_idempotency;
    create table bench_idempotency.seed_keys (scope text, key text, status_code int, response_body text,
      created_at timestamptz not null default now(), primary key (scope, key));
    create table bench_idempotency.effects (id bigserial primary key, label text not null);
    grant usage on schema bench_idempotency to ballast_anonymous;
    grant select, insert on bench_idempotency.effects to ballast_anonymous;
    grant usage on sequence bench_idempotency.effects_id_seq to ballast_anonymous;
    create function app_public.bench_idempotent_effect(label text) returns bigint as $$
      insert into bench_idempotency.effects (label) values (label) returning id
    $$ language sql volatile;
    grant execute on function app_public.bench_idempotent_effect(text) to ballast_anonymous;
    create function app_public.bench_idempotent_read() returns bigint as $$
      select id from bench_idempotency.effects order by id limit 1
    $$ language sql stable;
    grant execute on function app_public.bench_idempotent_read() to ballast_anonymous;
    -- the floor: the same mutation, unkeyed, that also makes the keyed request's two calls (claim and stored
    -- response, on a new key) inside PostGraphile's own transaction: the database work of a key, no more
    create function app_public.bench_idempotent_effect_floor(label text) returns bigint as $$
    declare
      k text := gen_random_uuid()::text;
      id bigint;
    begin
      insert into bench_idempotency.effects (label) values (label) returning effects.id into id;
      perform ballast.idempotency_claim('bench-idempotency-floor', k, 'h');
      perform ballast.idempotency_store('bench-idempotency-floor', k, 'h', 200, '${BODY}');
      return id;
    end;
    $$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
    grant execute on function app_public.bench_idempotent_effect_floor(text) to ballast_anonymous;`;
  const teardown = `
    drop function if exists app_public.bench_idempotent_effect(text);
    drop function if exists app_public.bench_idempotent_read();
    drop function if exists app_public.bench_idempotent_effect_floor(text);
    drop function if exists app_public.bench_idempotent_effect_floor(text);
    drop schema if exists bench_idempotency cascade;
    delete from ballast.idempotency_keys where scope like 'bench-idempotency%' or key like 'bench-idempotency-http-%';`;
  await ctx.query(setup);
  const rows: Row[] = [];
  const extra: Record<string, unknown> = { sqlSeconds, httpSeconds, clients, rounds };
  try {
    if (sqlSeconds > 0) { // sqlSeconds=0: the HTTP part alone
      // --- SQL: begin + complete on distinct keys, vs the seed's lookup-then-insert
      const key = `'c' || :client_id || '-' || :k`;
      ctx.progress(`SQL baseline: seed store (lookup, insert), ${clients} clients, ${sqlSeconds} s`);
      const seed = await ctx.pgbench({ clients, seconds: sqlSeconds, script: `\\set k random(1, 1000000000000)
  select status_code, response_body from bench_idempotency.seed_keys where scope = 'seed' and key = ${key};
  insert into bench_idempotency.seed_keys (scope, key, status_code, response_body) values ('seed', ${key}, 200, '${BODY}') on conflict do nothing;
  ` });
      ctx.progress(`SQL ballast: idempotency_begin + idempotency_complete, ${clients} clients, ${sqlSeconds} s`);
      const ballast = await ctx.pgbench({ clients, seconds: sqlSeconds, script: `\\set k random(1, 1000000000000)
  select outcome from ballast.idempotency_begin('bench-idempotency', ${key}, 'h');
  select ballast.idempotency_complete('bench-idempotency', ${key}, 200, '${BODY}');
  ` });
      ctx.progress(`SQL ballast, as the API calls it: idempotency_claim + idempotency_store inside one transaction, ${clients} clients, ${sqlSeconds} s`);
      // The API's two extra round trips: \\; sends statements as one simple-protocol message, as the API does.
      const asApi = await ctx.pgbench({ clients, seconds: sqlSeconds, script: `\\set k random(1, 1000000000000)
  begin \\; set local lock_timeout = 1000 \\; select outcome from ballast.idempotency_claim('bench-idempotency', ${key}, 'h') \\; set local lock_timeout to default;
  select ballast.idempotency_store('bench-idempotency', ${key}, 'h', 200, '${BODY}') \\; commit;
  ` });
      extra.pgbench = { seed, ballast, asApi };
      rows.push(
        { metric: `begin+complete, distinct keys, ${clients} clients`, baseline: seed.tps, ballast: ballast.tps, unit: 'keys/s',
          goal: { op: '>=', value: 5000, text: '≥ 5,000 keys/s' },
          note: `baseline = the seed's store (SELECT, then INSERT of the result; ran the side effect 32× for 32 duplicates). failed: ${seed.failed} / ${ballast.failed}` },
        { metric: 'claim + store in one transaction', baseline: seed.tps, ballast: asApi.tps, unit: 'keys/s',
          goal: { op: '>=', value: 5000, text: '≥ 5,000 keys/s' },
          note: 'what the API does around a keyed mutation: BEGIN and idempotency_claim (advisory lock, lookup) in one round trip, idempotency_store (one insert) and COMMIT in another' },
        { metric: 'begin+complete p50', baseline: seed.latencyP50Ms, ballast: ballast.latencyP50Ms, unit: 'ms' },
        { metric: 'begin+complete p99', baseline: seed.latencyP99Ms, ballast: ballast.latencyP99Ms, unit: 'ms' },
      );

      // --- Replay lookup: PostgreSQL (idempotency_claim, as the API calls it, on a completed key) vs the same lookup as a Redis GET,
      // once with C clients (pgbench vs redis-benchmark) and once from Node (pg vs ioredis), 16 clients each.
      ctx.progress(`replay: preparing ${REPLAY_KEYS} completed keys in PostgreSQL and Redis`);
      await ctx.query(`insert into ballast.idempotency_keys (scope, key, request_hash, status, status_code, response_body, created_at, expires_at)
        select 'bench-idempotency-replay', 'k' || i, 'h', 'completed', 200, $1, now(), now() + interval '1 day'
        from generate_series(0, ${REPLAY_KEYS - 1}) i`, [BODY]);
      await ctx.query('analyze ballast.idempotency_keys');
      await ensureRedis();
      const redisKey = (i: number) => `bench-idempotency:k${String(i).padStart(12, '0')}`; // redis-benchmark's __rand_int__
      const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
      await redis.connect();
      const pipeline = redis.pipeline();
      for (let i = 0; i < REPLAY_KEYS; i++) pipeline.set(redisKey(i), JSON.stringify({ status: 200, body: BODY }), 'EX', 3600);
      await pipeline.exec();
      await redis.quit();

      ctx.progress(`replay, C clients: redis-benchmark GET, ${clients} clients`);
      const redisC = await redisBenchmark(clients, sqlSeconds);
      ctx.progress(`replay, C clients: pgbench idempotency_claim → replay, ${clients} clients, ${sqlSeconds} s`);
      const pgC = await ctx.pgbench({ clients, seconds: sqlSeconds, script: `\\set k random(0, ${REPLAY_KEYS - 1})
  select * from ballast.idempotency_claim('bench-idempotency-replay', 'k' || :k, 'h');
  ` });
      ctx.progress(`replay, C clients: pgbench plain primary-key SELECT of the same rows (the floor), ${clients} clients, ${sqlSeconds} s`);
      const pgFloor = await ctx.pgbench({ clients, seconds: sqlSeconds, script: `\\set k random(0, ${REPLAY_KEYS - 1})
  select status_code, response_body from ballast.idempotency_keys where scope = 'bench-idempotency-replay' and key = 'k' || :k;
  ` });

      ctx.progress(`replay, Node: ioredis GET, ${clients} clients, ${sqlSeconds} s`);
      const redisClients = await Promise.all(Array.from({ length: clients }, async () => {
        const r = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
        await r.connect();
        return r;
      }));
      const redisNode = await loop(clients, sqlSeconds, (i) => redisClients[i].get(redisKey(Math.floor(Math.random() * REPLAY_KEYS))));
      await Promise.all(redisClients.map((r) => r.quit()));
      ctx.progress(`replay, Node: pg idempotency_claim → replay, ${clients} clients, ${sqlSeconds} s`);
      const pgClients = await Promise.all(Array.from({ length: clients }, async () => {
        const c = new pg.Client({ connectionString: ctx.cfg.authUrl });
        await c.connect();
        return c;
      }));
      const pgNode = await loop(clients, sqlSeconds, async (i) => {
        const r = await pgClients[i].query<{ outcome: string }>({ name: 'replay',
          text: 'select * from ballast.idempotency_claim($1, $2, $3)', values: ['bench-idempotency-replay', `k${Math.floor(Math.random() * REPLAY_KEYS)}`, 'h'] });
        if (r.rows[0].outcome !== 'replay') throw new Error(`expected a replay, got ${r.rows[0].outcome}`);
      });
      await Promise.all(pgClients.map((c) => c.end()));
      extra.replay = { cClients: { redis: redisC, postgres: pgC, postgresSelect: pgFloor }, node: { redis: redisNode, postgres: pgNode } };
      rows.push(
        { metric: `replay lookup p99, ${clients} C clients`, baseline: redisC.p99, ballast: pgC.latencyP99Ms, unit: 'ms',
          goal: { op: '<=', value: 5, text: '≤ 5 ms' },
          note: 'baseline = Redis GET of the stored response (redis-benchmark); ballast = idempotency_claim returning replay (pgbench)' },
        { metric: 'replay lookup p99 floor: plain PK SELECT', baseline: pgFloor.latencyP99Ms, ballast: pgC.latencyP99Ms, unit: 'ms',
          note: `baseline = SELECT of the stored row by primary key (pgbench, same clients): what any lookup costs on this machine now; p50 ${pgFloor.latencyP50Ms} ms, ${Math.round(pgFloor.tps)}/s` },
        { metric: 'replay lookup p50, C clients', baseline: redisC.p50, ballast: pgC.latencyP50Ms, unit: 'ms' },
        { metric: 'replay lookups/s, C clients', baseline: redisC.rps, ballast: pgC.tps, unit: 'ops/s' },
        { metric: `replay lookup p99, ${clients} Node clients`, baseline: redisNode.p99, ballast: pgNode.p99, unit: 'ms',
          note: 'the same lookups from Node, as the API would make them: ioredis GET vs pg (prepared) idempotency_claim' },
        { metric: 'replay lookup p50, Node clients', baseline: redisNode.p50, ballast: pgNode.p50, unit: 'ms' },
        { metric: 'replay lookups/s, Node clients', baseline: redisNode.perSecond, ballast: pgNode.perSecond, unit: 'ops/s' },
      );
    }

    // --- HTTP: the same mutation through the API, without and with an Idempotency-Key
    const api = await startApiProcess(ctx.cfg.authUrl);
    try {
      const body = JSON.stringify({ query: 'mutation($label: String!) { benchIdempotentEffect(input: {label: $label}) { clientMutationId } }', variables: { label: 'bench' } });
      const check = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `bench-idempotency-http-check-${Date.now()}` }, body });
      const checkBody = await check.text();
      if (check.status !== 200 || !checkBody.includes('"benchIdempotentEffect"') || checkBody.includes('"errors"')) throw new Error(`the bench mutation does not work: ${check.status} ${checkBody}`);
      const read = JSON.stringify({ query: '{ benchIdempotentRead }' });
      const floorBody = JSON.stringify({ query: 'mutation($label: String!) { benchIdempotentEffectFloor(input: {label: $label}) { clientMutationId } }', variables: { label: 'bench' } });
      const floorCheck = await (await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: floorBody })).text();
      if (!floorCheck.includes('"benchIdempotentEffectFloor"') || floorCheck.includes('"errors"')) throw new Error(`the floor mutation does not work: ${floorCheck}`);
      const replayKey = `bench-idempotency-http-replay-${Date.now()}`;
      const stored = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': replayKey }, body });
      if (stored.status !== 200) throw new Error(`the replayed mutation's first run failed: ${stored.status} ${await stored.text()}`);
      ctx.progress(`HTTP warm-up, 2 s`);
      await cannon(api.url, body, 2, clients, false);
      await cannon(api.url, body, 2, clients, true);
      // Rounds alternate baseline and ballast, so that a change in the machine's load (shared, noisy) hits
      // both alike; the table shows each one's median round.
      const runs: Record<'without' | 'withKey' | 'floor' | 'query' | 'replayed', Cannon[]> = { without: [], withKey: [], floor: [], query: [], replayed: [] };
      for (let round = 1; round <= rounds; round++) {
        ctx.progress(`HTTP round ${round}/${rounds}: mutation without a key, with a new key each, the floor, unkeyed query, replay; ${clients} connections, ${httpSeconds} s each`);
        runs.without.push(await cannon(api.url, body, httpSeconds, clients, false));
        runs.withKey.push(await cannon(api.url, body, httpSeconds, clients, true));
        runs.floor.push(await cannon(api.url, floorBody, httpSeconds, clients, false));
        runs.query.push(await cannon(api.url, read, httpSeconds, clients, false));
        runs.replayed.push(await cannon(api.url, body, httpSeconds, clients, replayKey));
      }
      const [without, withKey, floor, query, replayed] = (['without', 'withKey', 'floor', 'query', 'replayed'] as const).map((k) => medianRun(runs[k]));
      extra.httpRounds = runs;
      extra.http = { without, withKey, query, replayed };
      rows.push(
        { metric: `HTTP mutation, ${clients} connections`, baseline: without.rps, ballast: withKey.rps, unit: 'req/s',
          goal: { op: '>=', ratio: 0.8, text: '≥ 0.8x the unkeyed mutation' },
          note: `baseline = no Idempotency-Key; ballast = a new key per request (claim, mutation, stored response, one COMMIT). each round's ratio: ${runs.withKey.map((r, i) => (r.rps / runs.without[i].rps).toFixed(2)).join(', ')}. non-2xx: ${without.non2xx} / ${withKey.non2xx}` },
        { metric: 'HTTP mutation p50', baseline: without.p50, ballast: withKey.p50, unit: 'ms' },
        { metric: 'HTTP mutation p99', baseline: without.p99, ballast: withKey.p99, unit: 'ms' },
        { metric: 'HTTP floor: unkeyed mutation + claim and store inside', baseline: without.rps, ballast: floor.rps, unit: 'req/s',
          note: `the database work of a key without the middleware: the same mutation, no key, calling idempotency_claim and _store in its own transaction; each round's ratio: ${runs.floor.map((r, i) => (r.rps / runs.without[i].rps).toFixed(2)).join(', ')}. keyed vs floor: ${runs.withKey.map((r, i) => (r.rps / runs.floor[i].rps).toFixed(2)).join(', ')}` },
        { metric: `HTTP replay vs unkeyed query, ${clients} connections`, baseline: query.rps, ballast: replayed.rps, unit: 'req/s',
          goal: { op: '>=', ratio: 1, text: '≥ the unkeyed query' },
          note: `baseline = { benchIdempotentRead } (one-row query, no key); ballast = the keyed mutation replayed (Idempotent-Replayed); each round's ratio: ${runs.replayed.map((r, i) => (r.rps / runs.query[i].rps).toFixed(2)).join(', ')}. non-2xx: ${query.non2xx} / ${replayed.non2xx}` },
        { metric: 'HTTP replay p50', baseline: query.p50, ballast: replayed.p50, unit: 'ms' },
        { metric: 'HTTP replay p99', baseline: query.p99, ballast: replayed.p99, unit: 'ms' },
      );
    } finally {
      await api.stop();
    }
  } finally {
    await ctx.query(teardown);
    const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect().then(async () => {
      const keys = await redis.keys('bench-idempotency:*');
      for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000)); // ours only
    }).catch(() => undefined).finally(() => redis.disconnect());
  }
  return report('idempotency', rows, extra);
}

type LoopResult = { ops: number; perSecond: number; p50: number; p99: number };

/** `workers` sequential loops for `seconds`; per-operation latency percentiles. */
async function loop(workers: number, seconds: number, op: (worker: number) => Promise<unknown>): Promise<LoopResult> {
  const times: number[][] = Array.from({ length: workers }, () => []);
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(times.map(async (t, i) => {
    while (performance.now() < until) {
      const s = performance.now();
      await op(i);
      t.push(performance.now() - s);
    }
  }));
  const all = times.flat();
  return { ops: all.length, perSecond: all.length / ((performance.now() - started) / 1000), p50: percentile(all, 50), p99: percentile(all, 99) };
}

type Cannon = { rps: number; p50: number; p99: number; non2xx: number; errors: number; total: number };

/** The run of median throughput, with its own latencies; non-2xx and errors summed over every run. */
function medianRun(runs: Cannon[]): Cannon {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)];
  return { ...mid, non2xx: runs.reduce((n, r) => n + r.non2xx, 0), errors: runs.reduce((n, r) => n + r.errors, 0) };
}

/** withKey: false = no key, true = a new key per request, a string = that key on every request (replays). */
async function cannon(url: string, body: string, seconds: number, connections: number, withKey: boolean | string): Promise<Cannon> {
  let n = 0;
  const prefix = `bench-idempotency-http-${Date.now()}`;
  const r = await autocannon({
    url: `${url}/graphql`, method: 'POST', connections, duration: seconds,
    headers: { 'content-type': 'application/json' }, body,
    requests: withKey ? [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'idempotency-key': typeof withKey === 'string' ? withKey : `${prefix}-${++n}` } }) }] : undefined,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

/** redis-benchmark GET on random prepared keys; about `seconds` long at the rate this machine manages. */
async function redisBenchmark(clients: number, seconds: number): Promise<{ rps: number; p50: number; p99: number }> {
  const probe = await $({ quiet: true })`redis-benchmark -h 127.0.0.1 -p 6379 -c ${clients} -n 20000 -r ${REPLAY_KEYS} --csv GET bench-idempotency:k__rand_int__`;
  const rate = Number(parseCsv(probe.stdout).rps) || 20_000;
  const r = await $({ quiet: true })`redis-benchmark -h 127.0.0.1 -p 6379 -c ${clients} -n ${Math.round(rate * seconds)} -r ${REPLAY_KEYS} --csv GET bench-idempotency:k__rand_int__`;
  const row = parseCsv(r.stdout);
  return { rps: Number(row.rps), p50: Number(row.p50_latency_ms), p99: Number(row.p99_latency_ms) };
}

function parseCsv(text: string): Record<string, string> {
  const lines = text.trim().split('\n').filter((l) => l.startsWith('"'));
  const cells = (l: string) => l.slice(1, -1).split('","');
  const [head, row] = [cells(lines[0]), cells(lines[lines.length - 1])];
  return Object.fromEntries(head.map((h, i) => [h, row[i]]));
}

async function ensureRedis(): Promise<void> {
  const up = await new Promise<boolean>((resolve) => {
    const s = net.connect(6379, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (up) return;
  await $`redis-server --daemonize yes --bind '127.0.0.1 -::1' --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`;
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(6379, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('redis-server did not come up on 127.0.0.1:6379');
}

async function startApiProcess(authUrl: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  // The rate limiter is measured by the api bench; here it would turn most keyed mutations into 429s.
  const proc = spawn(process.execPath, ['--conditions=ballast-source', path.join(ROOT, 'example', 'server.ts')], {
    cwd: ROOT, env: { ...process.env, AUTH_DATABASE_URL: authUrl, PORT: String(port), LOG_LEVEL: 'warn', DB_POOL_MAX: process.env.BENCH_POOL_MAX ?? '10', RATE_LIMIT_QUERY: 'off', RATE_LIMIT_MUTATION: 'off' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`the API exited ${proc.exitCode}: ${stderr}`);
    const ok = await fetch(`${url}/health/ready`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (i > 300) throw new Error(`the API did not become ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: () => new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
