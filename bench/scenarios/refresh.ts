// refresh: what keeping a materialized view fresh costs the writers. Same table (100k rows), 8 pgbench
// clients of single-row UPDATEs for a fixed time, in interleaved rounds:
//   none       no trigger
//   empty      a statement trigger whose plpgsql function does nothing: the floor of any trigger design
//   ballast    ballast.register_matview() with its defaults (statement trigger reading the view's request
//              flag; a request row at most once a second)
//   append     a statement trigger appending a row to an insert-only table (the STACK-FACTS design)
//   seed       the seed's fix: a statement trigger upserting one queue row per view (a hot row)
//   immediate  a statement trigger running REFRESH MATERIALIZED VIEW CONCURRENTLY (one run: it is slow)
// Then, with ballast registered at debounce 1 s and the processor called every 100 ms, the time from the
// last write to the view showing it.
//
// The machine may be shared: each round runs every variant once, in rotating order, and the TPS ratio
// is also given as the median of the per-round ratios (variants of the same round ran seconds apart).
//
//   npm run bench -- refresh [seconds per run = 4] [rounds = 5] [rows = 100000]
import pg from 'pg';
import { median, report, type BenchContext, type PgbenchResult } from '../lib/harness.ts';
import { formatTable } from '../../src/table.ts';

type Variant = 'none' | 'empty' | 'ballast' | 'append' | 'seed' | 'immediate';
const LABEL: Record<Variant, string> = {
  none: 'no trigger',
  empty: 'empty plpgsql statement trigger',
  ballast: 'ballast register_matview',
  append: 'insert-only append per statement',
  seed: "seed's single-row upsert queue",
  immediate: 'immediate REFRESH trigger',
};

const SETUP = (rows: number) => `
  drop schema if exists bench_refresh cascade;
  create schema bench_refresh;
  create table bench_refresh.funds (id int primary key, org_id int not null, size numeric(20, 2) not null,
    irr numeric(8, 4), updated_at timestamptz not null default now());
  insert into bench_refresh.funds (id, org_id, size, irr)
    select g, g % 1000, 1000 + g % 777, (g % 300) / 1000.0 from generate_series(1, ${rows}) g;
  create materialized view bench_refresh.fund_stats as
    select org_id, count(*)::int as fund_count, sum(size) as total_size, round(avg(irr), 4) as avg_irr,
           max(updated_at) as last_updated_at
    from bench_refresh.funds group by org_id;
  create unique index on bench_refresh.fund_stats (org_id);
  create table bench_refresh.append_queue (matview regclass not null, requested_at timestamptz not null default now());
  create table bench_refresh.seed_queue (matview regclass primary key, requested_at timestamptz not null);
  create function bench_refresh.tg_empty() returns trigger language plpgsql as $$ begin return null; end $$;
  create function bench_refresh.tg_append() returns trigger language plpgsql as $$
    begin insert into bench_refresh.append_queue (matview) values ('bench_refresh.fund_stats'); return null; end $$;
  create function bench_refresh.tg_seed_upsert() returns trigger language plpgsql as $$
    begin
      insert into bench_refresh.seed_queue (matview, requested_at) values ('bench_refresh.fund_stats', now())
      on conflict (matview) do update set requested_at = excluded.requested_at;
      return null;
    end $$;
  create function bench_refresh.tg_immediate() returns trigger language plpgsql as $$
    begin refresh materialized view concurrently bench_refresh.fund_stats; return null; end $$;
  -- owned by the role that installed the kit, as an app's migration role would: register_matview()
  -- refuses a view its processor could not refresh
  alter schema bench_refresh owner to ballast_owner;
  alter table bench_refresh.funds owner to ballast_owner;
  alter materialized view bench_refresh.fund_stats owner to ballast_owner;`;

const UPDATE_SCRIPT = `\\set id random(1, :rows)
update bench_refresh.funds set size = size + 1, updated_at = now() where id = :id;
`;

async function install(ctx: BenchContext, v: Variant, debounce = '30 seconds', maxDelay = '5 minutes'): Promise<void> {
  const trigger = (fn: string) => `create trigger bench_tg after insert or update or delete or truncate on bench_refresh.funds
    for each statement execute function bench_refresh.${fn}()`;
  if (v === 'ballast') {
    await ctx.query(`select ballast.register_matview('bench_refresh.fund_stats', array['bench_refresh.funds']::regclass[], $1, $2)`, [debounce, maxDelay]);
  } else if (v === 'empty') await ctx.query(trigger('tg_empty'));
  else if (v === 'append') await ctx.query(trigger('tg_append'));
  else if (v === 'seed') await ctx.query(trigger('tg_seed_upsert'));
  else if (v === 'immediate') await ctx.query(trigger('tg_immediate'));
}

async function uninstall(ctx: BenchContext): Promise<void> {
  await ctx.query('drop trigger if exists bench_tg on bench_refresh.funds');
  await ctx.query(`select ballast.unregister_matview(matview) from ballast.registered_matviews
                   where matview = 'bench_refresh.fund_stats'::regclass`);
  await ctx.query('truncate bench_refresh.append_queue, bench_refresh.seed_queue');
}

async function measure(ctx: BenchContext, v: Variant, seconds: number, rows: number): Promise<PgbenchResult> {
  await uninstall(ctx);
  await ctx.query('vacuum bench_refresh.funds');
  await ctx.query('checkpoint');
  await install(ctx, v);
  try {
    return await ctx.pgbench({ script: UPDATE_SCRIPT, clients: 8, seconds, vars: { rows } });
  } finally {
    await uninstall(ctx);
  }
}

/** Calls the processor every `everyMs` on its own connection until stopped. */
function processorLoop(ctx: BenchContext, everyMs: number, stop: { now: boolean }): Promise<number> {
  return (async () => {
    const c = new pg.Client({ connectionString: ctx.cfg.rootUrl });
    await c.connect();
    let calls = 0;
    try {
      while (!stop.now) {
        await c.query(`call ballast.process_materialized_view_refreshes('5 seconds')`);
        calls++;
        await new Promise((r) => setTimeout(r, everyMs));
      }
    } finally {
      await c.end();
    }
    return calls;
  })();
}

/** Writes for a while with the processor running; then how long until the view shows the last write. */
async function freshness(ctx: BenchContext, rows: number, writeSeconds: number): Promise<{ ms: number; tps: number }> {
  const stop = { now: false };
  const loop = processorLoop(ctx, 100, stop);
  try {
    const w = await ctx.pgbench({ script: UPDATE_SCRIPT, clients: 8, seconds: writeSeconds, vars: { rows } });
    const want = (await ctx.query<{ total: string; last: Date }>(
      'select sum(size)::text as total, max(updated_at) as last from bench_refresh.funds')).rows[0];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const r = (await ctx.query<{ total: string; at: Date }>(
        'select sum(total_size)::text as total, clock_timestamp() as at from bench_refresh.fund_stats')).rows[0];
      if (r.total === want.total) return { ms: r.at.getTime() - want.last.getTime(), tps: w.tps };
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error('the view did not show the last write within 30 s');
  } finally {
    stop.now = true;
    await loop;
  }
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const seconds = Number(ctx.args[0] ?? 4);
  const rounds = Number(ctx.args[1] ?? 5);
  const rows = Number(ctx.args[2] ?? 100_000);
  if (!(seconds > 0 && rounds > 0 && rows >= 1000)) throw new Error('usage: npm run bench -- refresh [seconds>0] [rounds>0] [rows>=1000]');

  ctx.progress('setup');
  await ctx.query(SETUP(rows));
  await ctx.query('vacuum analyze bench_refresh.funds');
  const results: Record<Variant, PgbenchResult[]> = { none: [], empty: [], ballast: [], append: [], seed: [], immediate: [] };
  const order: Variant[] = ['none', 'empty', 'ballast', 'append', 'seed'];
  try {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < order.length; i++) {
        const v = order[(i + r) % order.length]; // rotate, so no variant always runs first or last
        ctx.progress(`round ${r + 1}/${rounds}: ${LABEL[v]}`);
        results[v].push(await measure(ctx, v, seconds, rows));
      }
    }
    ctx.progress(LABEL.immediate);
    results.immediate.push(await measure(ctx, 'immediate', seconds, rows));

    ctx.progress('freshness: last write → view fresh, debounce 1 s, processor every 100 ms');
    await install(ctx, 'ballast', '1 second', '10 seconds');
    await ctx.query(`call ballast.process_materialized_view_refreshes('5 seconds')`); // settle
    const fresh: { ms: number; tps: number }[] = [];
    for (let i = 0; i < 3; i++) fresh.push(await freshness(ctx, rows, 3));
    await uninstall(ctx);

    const med = (v: Variant, k: keyof PgbenchResult) => median(results[v].map((x) => x[k]));
    const perApproach = formatTable(['approach', 'runs', 'TPS (median)', 'TPS per run', 'p50 ms', 'p99 ms', 'vs no trigger'],
      (Object.keys(LABEL) as Variant[]).map((v) => [LABEL[v], String(results[v].length), med(v, 'tps').toFixed(0),
        results[v].map((x) => x.tps.toFixed(0)).join(' '), med(v, 'latencyP50Ms').toFixed(2), med(v, 'latencyP99Ms').toFixed(2),
        `${(med(v, 'tps') / med('none', 'tps')).toFixed(3)}x`]));
    process.stdout.write(`\nrefresh: ${rows} rows, 8 clients, single-row UPDATEs, ${seconds} s per run, ${rounds} interleaved rounds\n${perApproach}`);

    const freshMs = median(fresh.map((f) => f.ms));
    const pairedRatio = (v: Variant) => median(results[v].map((x, i) => x.tps / results.none[i].tps));
    return report('refresh', [
      { metric: 'UPDATE TPS: no trigger → ballast', baseline: med('none', 'tps'), ballast: med('ballast', 'tps'), unit: 'TPS',
        goal: { op: '>=', ratio: 0.95, text: '≥ 0.95x' },
        note: `median of the per-round ratios: ${pairedRatio('ballast').toFixed(3)}x (empty trigger ${pairedRatio('empty').toFixed(3)}x, append ${pairedRatio('append').toFixed(3)}x, seed ${pairedRatio('seed').toFixed(3)}x)` },
      { metric: 'UPDATE TPS: empty trigger → ballast', baseline: med('empty', 'tps'), ballast: med('ballast', 'tps'), unit: 'TPS',
        note: 'what ballast adds on top of merely having a plpgsql statement trigger' },
      { metric: 'p50 latency: no trigger → ballast', baseline: med('none', 'latencyP50Ms'), ballast: med('ballast', 'latencyP50Ms'), unit: 'ms' },
      { metric: 'p99 latency: no trigger → ballast', baseline: med('none', 'latencyP99Ms'), ballast: med('ballast', 'latencyP99Ms'), unit: 'ms' },
      { metric: 'UPDATE TPS: append per statement → ballast', baseline: med('append', 'tps'), ballast: med('ballast', 'tps'), unit: 'TPS' },
      { metric: "UPDATE TPS: seed's upsert queue → ballast", baseline: med('seed', 'tps'), ballast: med('ballast', 'tps'), unit: 'TPS' },
      { metric: "p99 latency: seed's upsert queue → ballast", baseline: med('seed', 'latencyP99Ms'), ballast: med('ballast', 'latencyP99Ms'), unit: 'ms' },
      { metric: 'UPDATE TPS: immediate refresh → ballast', baseline: med('immediate', 'tps'), ballast: med('ballast', 'tps'), unit: 'TPS' },
      { metric: 'p99 latency: immediate refresh → ballast', baseline: med('immediate', 'latencyP99Ms'), ballast: med('ballast', 'latencyP99Ms'), unit: 'ms' },
      { metric: 'last write → view fresh (debounce 1 s)', baseline: 1000, ballast: freshMs, unit: 'ms',
        goal: { op: '<=', value: 2000, text: '≤ debounce + 1 s' },
        note: `baseline is the debounce itself; runs: ${fresh.map((f) => f.ms.toFixed(0)).join(', ')} ms; processor called every 100 ms; writers meanwhile: ${fresh.map((f) => f.tps.toFixed(0)).join(', ')} TPS` },
    ], { rows, seconds, rounds, runs: results, freshness: fresh,
      pairedRatios: { empty: pairedRatio('empty'), ballast: pairedRatio('ballast'), append: pairedRatio('append'), seed: pairedRatio('seed') } });
  } finally {
    await ctx.query(`do $$ begin
      if to_regclass('bench_refresh.fund_stats') is not null then
        delete from ballast.mv_refresh_log where matview = 'bench_refresh.fund_stats'::regclass;
      end if; end $$`);
    await ctx.query('drop schema if exists bench_refresh cascade');
  }
}
