// cleanup: what deleting a million expired rows does to the writers of the same table.
// A table with `expired` rows past retention and `live` rows; 8 pgbench clients update live rows and
// insert new ones for the whole run. Phase A: no cleanup (baseline latency). Phase B: ballast's
// run_cleanup() until done (batches of 1000, FOR UPDATE SKIP LOCKED, a commit each, batch_pause apart: 60 ms by default). Phase C: one
// `DELETE ... WHERE created_at < now() - retain` on a fresh copy of the table (the naive way).
//
// The machine is shared (2 cores, other jobs come and go), so back-to-back phases drift by more than
// the effect measured. B therefore alternates: run_cleanup() for `on_s` seconds (max_runtime; the next
// call resumes), then `off_s` seconds without cleanup, until done; the off windows are phase A, taken
// over the same minute as B. A plain A before B is printed too, for reference. C gets its own local
// baseline: the 3 s of writers just before its DELETE.
// Writer latencies are real per-transaction latencies from pgbench's logs, cut to each window. A
// sampler reads pg_locks and pg_stat_activity every 50 ms: the longest lock wait and the deleter's
// longest transaction.
//
//   npm run bench -- cleanup [expired=1000000] [live=200000] [clients=8] [baseline_seconds=10] [on_s=3] [off_s=3] [batch=1000] [pause_ms=<policy default, 60>]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import pg from 'pg';
import { percentile, report, type BenchContext } from '../lib/harness.ts';
import { PG_BIN } from '../../scripts/lib/system.ts';

type Sample = { endMs: number; latMs: number };
type Probe = { at: number; waitMs: number; xactMs: number };
type Window = [number, number];
type Phase = { name: string; p50: number; p99: number; tps: number; n: number; seconds: number; maxLockWaitMs: number; deleterXactMs: number; deleted: number };

function args(ctx: BenchContext): Record<string, number> {
  const a: Record<string, number> = { expired: 1_000_000, live: 200_000, clients: 8, baseline_seconds: 10, on_s: 3, off_s: 3, batch: 1000, pause_ms: 0 };
  for (const kv of ctx.args) {
    const [k, v] = kv.split('=');
    if (!(k in a) || v === undefined || !Number.isFinite(Number(v)) || Number(v) < 0) {
      throw new Error(`cleanup bench: unknown or bad argument "${kv}"; use ${Object.keys(a).map((x) => `${x}=N`).join(' ')}`);
    }
    a[k] = Number(v);
  }
  return a;
}

/**
 * pgbench in back-to-back segments of `segSeconds` until `until()` says stop; every transaction's
 * latency and completion time comes from the per-transaction logs, so a phase can be cut to the
 * exact windows in which the deleting statement ran (or did not).
 */
async function writers(ctx: BenchContext, script: string, clients: number, segSeconds: number, until: () => boolean): Promise<Sample[]> {
  const url = new URL(ctx.cfg.rootUrl);
  const env = { ...process.env, PGHOST: url.hostname, PGPORT: url.port || '5432', PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: ctx.cfg.dbName };
  const samples: Sample[] = [];
  do {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-cleanup-bench-'));
    const file = path.join(dir, 'script.sql');
    fs.writeFileSync(file, script);
    const r = await $({ cwd: dir, env, quiet: true, nothrow: true })`${PG_BIN}/pgbench -n -c ${clients} -j ${Math.min(clients, 2)} -T ${segSeconds} -f ${file} -l --log-prefix=${path.join(dir, 'log')}`;
    if (r.exitCode !== 0 && !/actually processed/.test(r.stdout)) throw new Error(`pgbench failed: ${r.stderr.trim()}`);
    for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('log'))) {
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const c = line.split(' '); // client_id transaction_no latency_us script_no epoch_s epoch_us
        if (c.length >= 6) samples.push({ latMs: Number(c[2]) / 1000, endMs: Number(c[4]) * 1000 + Number(c[5]) / 1000 });
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  } while (!until());
  return samples;
}

/** Every 50 ms: the longest lock wait anywhere, and how long the deleter's transaction has been open. */
function sampler(ctx: BenchContext, pid: number): { stop: () => Promise<Probe[]> } {
  let running = true;
  const probes: Probe[] = [];
  const client = new pg.Client({ connectionString: ctx.cfg.rootUrl });
  const loop = (async () => {
    await client.connect();
    while (running) {
      const r = await client.query<{ wait: number | null; xact: number | null }>(
        `select (select max(extract(epoch from clock_timestamp() - waitstart)) * 1000 from pg_locks where not granted and waitstart is not null) as wait,
                (select extract(epoch from clock_timestamp() - xact_start) * 1000 from pg_stat_activity where pid = $1) as xact`, [pid]);
      probes.push({ at: Date.now(), waitMs: Number(r.rows[0].wait ?? 0), xactMs: Number(r.rows[0].xact ?? 0) });
      await new Promise((res) => setTimeout(res, 50));
    }
    await client.end();
  })();
  return { stop: async () => { running = false; await loop; return probes; } };
}

const inWindows = (t0: number, t1: number, ws: Window[]) => ws.some(([a, b]) => t0 >= a && t1 <= b);

function summarize(name: string, samples: Sample[], probes: Probe[], ws: Window[], deleted = 0): Phase {
  const lat = samples.filter((s) => inWindows(s.endMs - s.latMs, s.endMs, ws)).map((s) => s.latMs);
  const inside = probes.filter((p) => inWindows(p.at, p.at, ws));
  const seconds = ws.reduce((n, [a, b]) => n + (b - a) / 1000, 0);
  return { name, p50: percentile(lat, 50), p99: percentile(lat, 99), tps: lat.length / seconds, n: lat.length, seconds,
    maxLockWaitMs: Math.max(0, ...inside.map((p) => p.waitMs)), deleterXactMs: Math.max(0, ...inside.map((p) => p.xactMs)), deleted };
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const a = args(ctx);
  const owner = new pg.Client({ connectionString: ctx.cfg.ownerUrl });
  await owner.connect();
  const deleter = new pg.Client({ connectionString: ctx.cfg.ownerUrl });
  await deleter.connect();
  const deleterPid = (await deleter.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
  const S = 'bench_cleanup';
  const started = Date.now();
  const steps: string[] = [];
  const step = (label: string) => { steps.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${label}`); ctx.progress(label); };
  try {
    // ---- setup: two identical tables (B cleans one, C deletes from the other), owned like app tables
    step('loading');
    await owner.query(`drop schema if exists ${S} cascade`);
    await owner.query(`create schema ${S}`);
    const liveLo = a.expired + 1;
    const liveHi = a.expired + a.live;
    for (const t of ['events', 'events_c']) {
      await owner.query(`create table ${S}.${t} (
        id bigint generated by default as identity primary key,
        created_at timestamptz not null,
        updated_at timestamptz,
        payload int not null default 0,
        note text not null default 'an event row of typical width, some forty bytes')`);
      // append-only in time: the oldest rows sit at the start of the heap, as in a real table
      await owner.query(`insert into ${S}.${t} (id, created_at)
        select g, now() - interval '60 days' + g * (interval '30 days' / $1::int) from generate_series(1, $1::int) g`, [a.expired]);
      await owner.query(`insert into ${S}.${t} (id, created_at)
        select g, now() - interval '12 hours' + (g - $1::int) * (interval '12 hours' / $2::int) from generate_series($1::int + 1, $1::int + $2::int) g`,
        [a.expired, a.live]);
      await owner.query(`select setval(pg_get_serial_sequence('${S}.${t}', 'id'), $1::bigint)`, [liveHi]);
      await owner.query(`create index ${t}_created_at_idx on ${S}.${t} (created_at)`);
      await owner.query(`vacuum analyze ${S}.${t}`);
    }
    // a policy run by hand: disabled, so no pg_cron job fires during the bench
    // batch_pause: the policy's default unless pause_ms is given
    await owner.query(`select ballast.add_cleanup_policy('${S}.events', 'created_at', '1 day', $1, '17 * * * *', null, '1 hour'${ctx.args.some((x) => x.startsWith('pause_ms=')) ? ', make_interval(secs => $2::float8 / 1000)' : ''})`,
      ctx.args.some((x) => x.startsWith('pause_ms=')) ? [a.batch, a.pause_ms] : [a.batch]);
    await owner.query(`update ballast.cleanup_policies set enabled = false where tbl = '${S}.events'::regclass`);

    const script = (t: string) => `\\set id random(${liveLo}, ${liveHi})
update ${S}.${t} set payload = payload + 1, updated_at = now() where id = :id;
insert into ${S}.${t} (created_at) values (now());
`;

    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const seg = 5;

    // ---- A (reference): writers alone, before anything else
    step('checkpoint');
    await ctx.query('checkpoint');
    step('A: writers, no cleanup');
    let probes = sampler(ctx, deleterPid);
    let t0 = Date.now();
    const sA = await writers(ctx, script('events'), a.clients, seg, () => Date.now() - t0 >= a.baseline_seconds * 1000);
    const A = summarize('A', sA, await probes.stop(), [[t0 + 1000, Date.now()]]);

    // ---- B: run_cleanup() on_s seconds at a time until done; the off_s pauses between are A again
    step('checkpoint');
    await ctx.query('checkpoint');
    step('B: writers + run_cleanup() until done, alternating with no cleanup');
    let done = false;
    const on: Window[] = [];
    const off: Window[] = [];
    probes = sampler(ctx, deleterPid);
    const wB = writers(ctx, script('events'), a.clients, seg, () => done);
    await sleep(1500); // writers at speed first
    let last = { stopped_by: 'max_runtime', rows: '0' };
    let deletedB = 0;
    let cycles = 0;
    while (last.stopped_by === 'max_runtime') {
      const offFrom = Date.now();
      await sleep(a.off_s * 1000);
      off.push([offFrom + 500, Date.now()]); // the first 500 ms after a burst are neither
      const from = Date.now();
      await deleter.query(`call ballast.run_cleanup(make_interval(secs => $1), '${S}.events')`, [a.on_s]);
      on.push([from, Date.now()]);
      last = (await owner.query<{ stopped_by: string; rows: string }>(
        `select stopped_by, rows_deleted as rows from ballast.cleanup_runs where policy = '${S}.events'::regclass order by id desc limit 1`)).rows[0];
      if (last.stopped_by === 'error') throw new Error('run_cleanup stopped by an error: see ballast.cleanup_runs');
      deletedB += Number(last.rows);
      ctx.progress(`B: ${deletedB} rows deleted`);
      cycles++;
    }
    done = true;
    const sB = await wB;
    const pB = await probes.stop();
    const B = summarize('B', sB, pB, on, deletedB);
    const Aint = summarize('A (B off)', sB, pB, off);
    step('vacuum + checkpoint');
    await owner.query(`vacuum ${S}.events`); // B's dead rows are not C's business
    await ctx.query('checkpoint');

    // ---- C: one DELETE on the fresh copy; its local baseline is the 3 s of writers just before it
    step('C: writers + one big DELETE');
    done = false;
    probes = sampler(ctx, deleterPid);
    const wC = writers(ctx, script('events_c'), a.clients, seg, () => done);
    await sleep(1000);
    const preFrom = Date.now();
    await sleep(3000);
    const cFrom = Date.now();
    const del = await deleter.query(`delete from ${S}.events_c where created_at < now() - interval '1 day'`);
    const cTo = Date.now();
    done = true;
    const sC = await wC;
    const pC = await probes.stop();
    const C = summarize('C', sC, pC, [[cFrom, cTo]], del.rowCount ?? 0);
    const Cpre = summarize('A (before C)', sC, pC, [[preFrom, cFrom]]);

    step('report');
    process.stdout.write(`\ntimeline: ${steps.join(' | ')}\n`);
    const phases = [A, Aint, B, Cpre, C];
    const rowsPerSec = (p: Phase) => p.deleted / p.seconds;
    process.stdout.write(`phases (${a.clients} pgbench clients, each transaction updates a live row and inserts a row; B: ${cycles} runs of ≤ ${a.on_s} s, ${a.off_s} s apart)\n`);
    process.stdout.write('  phase         window_s  writer_tx  p50_ms  p99_ms  writer_tps  rows_deleted   rows/s  max_lock_wait_ms  deleter_longest_xact_ms\n');
    for (const p of phases) {
      process.stdout.write(`  ${p.name.padEnd(12)}  ${p.seconds.toFixed(1).padStart(8)}  ${String(p.n).padStart(9)}  ${p.p50.toFixed(2).padStart(6)}  ${p.p99.toFixed(2).padStart(6)}  ${p.tps.toFixed(0).padStart(10)}  ${String(p.deleted).padStart(12)}  ${rowsPerSec(p).toFixed(0).padStart(7)}  ${p.maxLockWaitMs.toFixed(0).padStart(16)}  ${p.deleterXactMs.toFixed(0).padStart(23)}\n`);
    }
    if (C.maxLockWaitMs + B.maxLockWaitMs === 0) {
      process.stdout.write('max lock wait seen: 0 ms in B and in C (pg_locks.waitstart sampled every 50 ms; log_lock_waits logs longer ones)\n');
    }
    return report('cleanup', [
      { metric: 'writer p99: B (run_cleanup) vs A (no cleanup, between B runs)', baseline: Aint.p99, ballast: B.p99, unit: 'ms',
        goal: { op: '<=', ratio: 1.5, text: '≤ 1.5x A' }, note: `plain A before B: p99 ${A.p99.toFixed(2)} ms, p50 ${A.p50.toFixed(2)} ms` },
      { metric: 'writer p50: B vs A', baseline: Aint.p50, ballast: B.p50, unit: 'ms' },
      { metric: 'writer TPS: B vs A', baseline: Aint.tps, ballast: B.tps, unit: 'tx/s' },
      { metric: 'writer p99: C (one DELETE) vs the 3 s before it', baseline: Cpre.p99, ballast: C.p99, unit: 'ms',
        note: 'here the naive DELETE is measured in the ballast column' },
      { metric: 'writer p99: C vs B', baseline: C.p99, ballast: B.p99, unit: 'ms' },
      { metric: 'rows deleted per second: C vs B', baseline: rowsPerSec(C), ballast: rowsPerSec(B), unit: 'rows/s',
        note: `B: ${deletedB} rows in ${B.seconds.toFixed(1)} s of cleanup; C: ${C.deleted} rows in ${C.seconds.toFixed(1)} s` },
      { metric: "deleter's longest transaction: C vs B", baseline: C.deleterXactMs, ballast: B.deleterXactMs, unit: 'ms',
        note: 'how long its row locks are held and the xmin horizon (vacuum, replicas) is pinned' },
      ...(C.maxLockWaitMs + B.maxLockWaitMs > 0
        ? [{ metric: 'max lock wait seen: C vs B', baseline: C.maxLockWaitMs, ballast: B.maxLockWaitMs, unit: 'ms' }]
        : []),
    ], { args: a, phases, cycles });
  } finally {
    await owner.query(`select ballast.drop_cleanup_policy(to_regclass('${S}.events'))`).catch(() => undefined);
    await owner.query(`delete from ballast.cleanup_runs where table_name like '${S}.%'`).catch(() => undefined);
    await owner.query(`drop schema if exists ${S} cascade`).catch(() => undefined);
    await owner.end();
    await deleter.end();
  }
}
