// invalidation: what cache-invalidation triggers cost the writes they watch, and how fast the worker
// delivers. Three parts, each baseline and ballast side by side:
//   1. a 100k-row bulk UPDATE with three tag templates (fund:{id}, org:{org_id}:funds, funds): no trigger
//      vs invalidate_on_change() (collapses), next to the seed's row-level enqueue trigger; tags enqueued;
//   2. 8 pgbench clients of single-row UPDATEs: TPS with no trigger vs invalidate_on_change(), next to a
//      trigger that upserts a graphile-worker wake-up job (job_key) per statement — the hot row avoided;
//   3. delivery of N distinct pending tags to a loopback HTTP sink: one worker process running
//      ballast_deliver_cache_invalidations vs one graphile-worker job per tag.
// Args (key=value): rounds=3 (bulk UPDATE repetitions), seconds=8 (per pgbench run), tps_rounds=3,
// tags=100000 and baseline_tags=10000 (part 3: the job-per-tag baseline is timed on fewer tags, its rate
// does not depend on the count and 100k jobs take minutes), parts=1,2,3.
import http from 'node:http';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from '../../scripts/lib/config.ts';
import { median, report, serverCpuRows, type BenchContext, type PgbenchResult, type Row } from '../lib/harness.ts';

const S = 'bench_invalidation';
const TEMPLATES = `array['fund:{id}', 'org:{org_id}:funds', 'funds']`;

function args(ctx: BenchContext): Record<string, string> {
  return Object.fromEntries(ctx.args.map((a) => a.split('=') as [string, string]));
}

async function setup(ctx: BenchContext): Promise<void> {
  await ctx.query(`drop schema if exists ${S} cascade`);
  await ctx.query(`create schema ${S}`);
  await ctx.query(`create table ${S}.funds (
    id bigint primary key, org_id uuid not null, name text not null, size numeric(20, 2) not null default 0,
    updated_at timestamptz not null default now())`);
  await ctx.query(`create index on ${S}.funds (org_id)`);
  // 100k funds in 500 organisations (the seed's measurement: 100,501 distinct tags)
  await ctx.query(`insert into ${S}.funds (id, org_id, name)
    select g, ('00000000-0000-0000-0000-' || lpad((g % 500)::text, 12, '0'))::uuid, 'fund ' || g
    from generate_series(1, 100000) g`);
  // the seed's row-level enqueue trigger: three inserts per row into a queue table
  await ctx.query(`create table ${S}.seed_queue (id bigint generated always as identity primary key, tag text not null,
    enqueued_at timestamptz not null default now(), processed_at timestamptz)`);
  await ctx.query(`create function ${S}.tg_seed_enqueue() returns trigger language plpgsql as $$
    begin
      insert into ${S}.seed_queue (tag) values ('fund:' || NEW.id), ('org:' || NEW.org_id || ':funds'), ('funds');
      return null;
    end $$`);
  await ctx.query(`create trigger seed_enqueue after update on ${S}.funds for each row execute function ${S}.tg_seed_enqueue()`);
  // what the brief warns about: a wake-up job upserted by every statement (one job_key row for everyone)
  await ctx.query(`create function ${S}.tg_wake_every_statement() returns trigger language plpgsql as $$
    begin
      perform ballast_worker.add_job('bench_noop', job_key => 'bench_invalidation_wake', job_key_mode => 'preserve_run_at');
      return null;
    end $$`);
  await ctx.query(`create trigger wake_every_statement after update on ${S}.funds for each statement execute function ${S}.tg_wake_every_statement()`);
  // the floor: a statement-level trigger with a transition table that appends one row and does nothing else
  await ctx.query(`create table ${S}.append_only (tags text[] not null)`);
  await ctx.query(`create function ${S}.tg_append_only() returns trigger language plpgsql as $$
    begin
      insert into ${S}.append_only (tags) select array['fund:' || n.id] from ballast_new n;
      return null;
    end $$`);
  await ctx.query(`create trigger append_only after update on ${S}.funds referencing new table as ballast_new
    for each statement execute function ${S}.tg_append_only()`);
  await ctx.query(`select ballast.invalidate_on_change('${S}.funds', ${TEMPLATES})`);
  await ctx.query(`vacuum analyze ${S}.funds`);
}

type Mode = 'none' | 'ballast' | 'seed' | 'wake' | 'floor';
async function use(ctx: BenchContext, mode: Mode): Promise<void> {
  await ctx.query(`alter table ${S}.funds disable trigger user`);
  if (mode === 'ballast') {
    for (const t of ['insert', 'update', 'delete', 'truncate']) await ctx.query(`alter table ${S}.funds enable trigger _500_invalidate_cache_${t}`);
  } else if (mode === 'seed') {
    await ctx.query(`alter table ${S}.funds enable trigger seed_enqueue`);
  } else if (mode === 'wake') {
    await ctx.query(`alter table ${S}.funds enable trigger wake_every_statement`);
  } else if (mode === 'floor') {
    await ctx.query(`alter table ${S}.funds enable trigger append_only`);
  }
}

/** Removes what a run left in the kit's tables (only rows enqueued since `since`). */
async function clearKit(ctx: BenchContext, since: Date): Promise<void> {
  await ctx.query('delete from ballast.cache_invalidation_inbox where enqueued_at >= $1', [since]);
  await ctx.query('delete from ballast.cache_invalidation_queue where enqueued_at >= $1', [since]);
  await ctx.query(`delete from ballast_worker._private_jobs where key = 'bench_invalidation_wake'`);
}

async function bulkUpdate(ctx: BenchContext, rounds: number): Promise<{ rows: Row[]; extra: Record<string, unknown> }> {
  const times: Record<'none' | 'ballast' | 'seed', number[]> = { none: [], ballast: [], seed: [] };
  let ballastTags = 0;
  let ballastQueued = 0;
  let seedTags = 0;
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['none', 'ballast', 'seed'] as const) {
      ctx.progress(`part 1: bulk UPDATE of 100k rows (${mode})`, r + 1, rounds);
      await use(ctx, mode);
      await ctx.query(`vacuum ${S}.funds`);
      const since = (await ctx.query<{ now: Date }>('select clock_timestamp() as now')).rows[0].now;
      const t = performance.now();
      await ctx.query(`update ${S}.funds set size = size + 1, updated_at = now()`);
      times[mode].push((performance.now() - t) / 1000);
      if (mode === 'ballast') {
        // what this UPDATE left in the inbox, and the distinct tags a merge makes of it
        const [t] = (await ctx.query<{ n: string; d: string }>(
          `select coalesce(sum(cardinality(tags)), 0) as n, (select count(distinct x) from ballast.cache_invalidation_inbox i, unnest(i.tags) x
             where i.enqueued_at >= $1 and x <> '') as d from ballast.cache_invalidation_inbox where enqueued_at >= $1`, [since])).rows;
        ballastTags = Number(t.n);
        ballastQueued = Number(t.d);
      }
      if (mode === 'seed') {
        seedTags = Number((await ctx.query<{ n: string }>(`select count(*) as n from ${S}.seed_queue`)).rows[0].n);
        await ctx.query(`truncate ${S}.seed_queue`);
      }
      await clearKit(ctx, since);
    }
  }
  const none = median(times.none);
  return {
    rows: [
      { metric: 'bulk UPDATE 100k rows, 3 templates', baseline: none, ballast: median(times.ballast), unit: 's',
        goal: { op: '<=', ratio: 1.5, text: '≤ 1.5x' }, note: `baseline: no trigger; median of ${rounds}` },
      { metric: 'same, seed row-level enqueue trigger', baseline: none, ballast: median(times.seed), unit: 's',
        note: 'ballast column: the seed\'s 3 inserts per row (for comparison)' },
      { metric: 'tags enqueued by that UPDATE', baseline: seedTags, ballast: ballastQueued, unit: 'rows',
        note: `baseline: row-level trigger; ballast: distinct tags (${ballastTags} in the statement's one inbox row)` },
    ],
    extra: { bulkSeconds: times, ballastTags, ballastQueued, seedTags },
  };
}

async function singleRowTps(ctx: BenchContext, seconds: number, rounds: number): Promise<{ rows: Row[]; extra: Record<string, unknown> }> {
  const script = `\\set id random(1, 100000)\nupdate ${S}.funds set size = size + 1, updated_at = now() where id = :id;\n`;
  const res: Record<'none' | 'ballast' | 'wake' | 'floor', { tps: number[]; p99: number[] }> =
    { none: { tps: [], p99: [] }, ballast: { tps: [], p99: [] }, wake: { tps: [], p99: [] }, floor: { tps: [], p99: [] } };
  const runs: Record<'none' | 'ballast', PgbenchResult[]> = { none: [], ballast: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['none', 'ballast'] as const) {
      ctx.progress(`part 2: 8 clients, single-row UPDATE (${mode})`, r + 1, rounds);
      await use(ctx, mode);
      const since = (await ctx.query<{ now: Date }>('select clock_timestamp() as now')).rows[0].now;
      const p = await ctx.pgbench({ script, clients: 8, seconds });
      res[mode].tps.push(p.tps);
      res[mode].p99.push(p.latencyP99Ms);
      runs[mode].push(p);
      await clearKit(ctx, since);
    }
  }
  for (const mode of ['floor', 'wake'] as const) {
    ctx.progress(`part 2: 8 clients, single-row UPDATE (${mode}, once)`);
    await use(ctx, mode);
    const since = (await ctx.query<{ now: Date }>('select clock_timestamp() as now')).rows[0].now;
    const p = await ctx.pgbench({ script, clients: 8, seconds });
    res[mode].tps.push(p.tps);
    res[mode].p99.push(p.latencyP99Ms);
    await clearKit(ctx, since);
    await ctx.query(`truncate ${S}.append_only`);
  }
  await use(ctx, 'ballast');
  const none = median(res.none.tps);
  return {
    rows: [
      { metric: 'single-row UPDATE TPS, 8 clients', baseline: none, ballast: median(res.ballast.tps), unit: 'tps',
        goal: { op: '>=', ratio: 0.9, text: '≥ 0.9x' }, note: `baseline: no trigger; median of ${rounds} × ${seconds} s, alternating` },
      { metric: 'single-row UPDATE p99, 8 clients', baseline: median(res.none.p99), ballast: median(res.ballast.p99), unit: 'ms' },
      ...serverCpuRows('single-row UPDATE, server CPU per transaction', runs.none, runs.ballast),
      { metric: 'same, trigger that only appends a row', baseline: none, ballast: median(res.floor.tps), unit: 'tps',
        note: 'ballast column: the floor of any statement trigger with a transition table that writes (one run)' },
      { metric: 'same, job_key wake-up upserted per statement', baseline: none, ballast: median(res.wake.tps), unit: 'tps',
        note: 'ballast column: the hot row the design avoids (one run, for comparison)' },
    ],
    extra: { tps: res, serverCpuUsPerTx: { none: runs.none.map((x) => x.serverCpuUsPerTx), ballast: runs.ballast.map((x) => x.serverCpuUsPerTx) } },
  };
}

type Sink = { url: string; count: () => number; reset: () => void; close: () => Promise<void> };
/** A loopback purge endpoint that counts the distinct tags it received that start with `prefix`. */
async function sinkServer(prefix: string): Promise<Sink> {
  const seen = new Set<string>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      for (const t of (JSON.parse(body) as { tags: string[] }).tags) if (t.startsWith(prefix)) seen.add(t);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address() as { port: number };
  return { url: `http://127.0.0.1:${a.port}/purge`, count: () => seen.size, reset: () => seen.clear(),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }) };
}

function startProcess(script: string, env: Record<string, string>, readyPattern: RegExp): Promise<ChildProcess> {
  // --conditions=ballast-source: the example's worker imports ballast/worker by name (this checkout's TypeScript)
  const p = spawn(process.execPath, ['--conditions=ballast-source', path.join(ROOT, script)], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => { out += d; if (readyPattern.test(out)) resolve(p); };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', (d) => { out += d; });
    p.once('exit', (code) => reject(new Error(`${script} exited ${code} before it was ready:\n${out.slice(-2000)}`)));
  });
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const done = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGTERM');
  await done;
}

async function waitCount(ctx: BenchContext, label: string, sink: Sink, n: number, timeoutMs: number): Promise<number> {
  const t = performance.now();
  while (sink.count() < n) {
    if (performance.now() - t > timeoutMs) throw new Error(`${label}: only ${sink.count()} of ${n} tags arrived within ${timeoutMs} ms`);
    ctx.progress(label, sink.count(), n);
    await new Promise((r) => setTimeout(r, 20));
  }
  return (performance.now() - t) / 1000;
}

async function delivery(ctx: BenchContext, tags: number, baselineTags: number): Promise<{ rows: Row[]; extra: Record<string, unknown> }> {
  const prefix = `bench-deliver-${Date.now()}:`;
  const sink = await sinkServer(prefix);
  try {
    // ballast: one worker process; the tags are committed at once, timing starts at the commit
    const worker = await startProcess('example/worker.ts', { WORKER_DATABASE_URL: ctx.cfg.workerUrl, LOG_LEVEL: 'info', INVALIDATION_SINKS: 'http', INVALIDATION_HTTP_URL: sink.url,
      INVALIDATION_POLL_MS: '50' }, /worker running/);
    let ballastSeconds: number;
    try {
      await new Promise((r) => setTimeout(r, 3000)); // graphile-worker up, the delivery task polling
      await ctx.query(`insert into ballast.cache_invalidation_queue (tag) select $1 || g from generate_series(1, $2::int) g`, [prefix + 'b', tags]);
      ballastSeconds = await waitCount(ctx, 'part 3: ballast_deliver_cache_invalidations', sink, tags, 600_000);
    } finally {
      await stopProcess(worker);
    }
    const [acked] = (await ctx.query<{ n: string }>(`select count(*) as n from ballast.cache_invalidation_queue where tag like $1 and processed_at is not null`, [`${prefix}%`])).rows;
    await ctx.query(`delete from ballast.cache_invalidation_queue where tag like $1`, [`${prefix}%`]);

    // baseline: one graphile-worker job per tag, concurrency 10
    sink.reset();
    const baseline = await startProcess('bench/lib/job_per_tag_worker.ts', { SINK_URL: sink.url, CONCURRENCY: '10' }, /ready/);
    let baselineSeconds: number;
    try {
      await ctx.query(`select count(*) from ballast_worker.add_jobs(array(
        select ('bench_invalidate_one', json_build_object('tag', $1 || g), null, null, null, null, null, null)::ballast_worker.job_spec
        from generate_series(1, $2::int) g))`, [prefix + 'j', baselineTags]);
      baselineSeconds = await waitCount(ctx, 'part 3: one graphile-worker job per tag', sink, baselineTags, 900_000);
    } finally {
      await stopProcess(baseline);
      await ctx.query(`delete from ballast_worker._private_jobs where task_id in
        (select id from ballast_worker._private_tasks where identifier = 'bench_invalidate_one')`);
    }
    return {
      rows: [{ metric: `delivery of ${tags / 1000}k distinct tags, one process`, baseline: baselineTags / baselineSeconds, ballast: tags / ballastSeconds,
        unit: 'tags/s', goal: { op: '>=', value: 20_000, text: '≥ 20k tags/s' },
        note: `baseline: one graphile-worker job per tag (concurrency 10), ${baselineTags} jobs in ${baselineSeconds.toFixed(1)} s; ballast: ${tags} tags in ${ballastSeconds.toFixed(1)} s, ${acked.n} rows acked` }],
      extra: { deliverySeconds: { ballast: ballastSeconds, baseline: baselineSeconds }, tags, baselineTags },
    };
  } finally {
    await sink.close();
  }
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const a = args(ctx);
  const parts = (a.parts ?? '1,2,3').split(',');
  const rows: Row[] = [];
  const extra: Record<string, unknown> = { args: a };
  await setup(ctx);
  try {
    if (parts.includes('1')) {
      const r = await bulkUpdate(ctx, Number(a.rounds ?? 3));
      rows.push(...r.rows);
      Object.assign(extra, r.extra);
    }
    if (parts.includes('2')) {
      const r = await singleRowTps(ctx, Number(a.seconds ?? 8), Number(a.tps_rounds ?? 3));
      rows.push(...r.rows);
      Object.assign(extra, r.extra);
    }
    if (parts.includes('3')) {
      const r = await delivery(ctx, Number(a.tags ?? 100_000), Number(a.baseline_tags ?? 10_000));
      rows.push(...r.rows);
      Object.assign(extra, r.extra);
    }
  } finally {
    await ctx.query(`select ballast.stop_invalidating('${S}.funds')`);
    await ctx.query(`drop schema if exists ${S} cascade`);
  }
  return report('invalidation', rows, extra);
}
