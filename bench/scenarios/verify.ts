// verify: what one verify_migration_success() call costs, against the plain catalog query a
// hand-written readiness check would run (does each ballast table have RLS forced?).
import { median, percentile, report, type BenchContext } from '../lib/harness.ts';

async function timeMany(ctx: BenchContext, label: string, sql: string, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await ctx.query(sql);
    times.push(performance.now() - t);
    if (i % 20 === 0) ctx.progress(label, i, n);
  }
  return times;
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const n = Number(ctx.args[0] ?? 200);
  const baselineSql = `select c.oid::regclass, c.relrowsecurity and c.relforcerowsecurity
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'ballast' and c.relkind = 'r'`;
  const ballastSql = 'select * from ballast.verify_migration_success()';
  await timeMany(ctx, 'warm-up', ballastSql, 10);
  const base = await timeMany(ctx, 'baseline: catalog query', baselineSql, n);
  const full = await timeMany(ctx, 'ballast: verify_migration_success()', ballastSql, n);
  const checks = (await ctx.query('select count(*)::int as n from ballast.verify_migration_success()')).rows[0].n as number;
  return report('verify', [
    { metric: 'one call, median', baseline: median(base), ballast: median(full), unit: 'ms',
      goal: { op: '<=', value: 100, text: '≤ 100 ms' }, note: `verify runs ${checks} checks; the baseline covers one of them` },
    { metric: 'one call, p99', baseline: percentile(base, 99), ballast: percentile(full, 99), unit: 'ms' },
  ], { calls: n, checks });
}
