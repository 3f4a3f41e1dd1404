// access: what tenancy and auditing cost.
//   1. single-row UPDATE TPS, 8 clients, on a 100k-row table without and with ballast.enable_audit (goal ≥ 0.7x)
//   2. one 100k-row bulk UPDATE without and with audit (goal ≤ 3x)
//   1 and 2 also run a third copy with a floor trigger: what writing this audit row costs by itself. A plain
//      statement trigger writes the same row (record_id, both jsonb images, org_id) into a copy of
//      ballast.audit_log with its indexes, and nothing else: no SECURITY DEFINER, claims, changed columns or
//      exclusions.
//   3. a member listing their organisation's funds (1,000 of 1M funds in 1,000 orgs) through the example
//      app's RLS policies, against the owner running the same listing with an explicit where org_id = (goal ≤ 1.3x
//      on p50 and p99)
// Every request-shaped transaction sets request.jwt.claims and request.id like the API does, on both sides.
// Usage: npm run bench -- access [seconds per pgbench run = 8] [rounds = 2] [funds = 1000000]
import pg from 'pg';
import { median, report, serverCpuRows, type BenchContext, type PgbenchResult } from '../lib/harness.ts';
import { processCpuMs } from '../lib/cpu.ts';

const ROWS = 100_000;
/** The three copies of the table parts 1 and 2 compare: no trigger, ballast's audit, the floor trigger. */
const COPIES = ['plain', 'audited', 'floor'] as const;
type Copy = (typeof COPIES)[number];
const perCopy = <T>(make: () => T) => Object.fromEntries(COPIES.map((c) => [c, make()])) as Record<Copy, T>;
const ORGS = 1_000;
const ORG = (expr: string) => `md5('bench_access_org_' || ${expr})::uuid`;
const USER = (expr: string) => `md5('bench_access_user_' || ${expr})::uuid`;

function updateScript(table: string): string {
  return `\\set id random(1, ${ROWS})
begin;
select set_config('request.jwt.claims', json_build_object('sub', ${USER(':id % 1000')}, 'org_id', ${ORG(':id % 1000')}, 'role', 'admin')::text, true),
       set_config('request.id', 'bench-' || :id, true);
update bench_access.${table} set v = v + 1 where id = :id;
commit;
`;
}

const memberListing = `\\set o random(1, ${ORGS})
begin;
set local role ballast_member;
select set_config('request.jwt.claims', json_build_object('sub', ${USER(':o')}, 'org_id', ${ORG(':o')}, 'role', 'member')::text, true),
       set_config('request.id', 'bench-' || :o, true);
select id, name, size, irr from app_public.funds;
commit;
`;
const ownerListing = `\\set o random(1, ${ORGS})
begin;
set local role ballast_owner;
select set_config('request.jwt.claims', '', true), set_config('request.id', 'bench-' || :o, true);
select id, name, size, irr from app_public.funds where org_id = ${ORG(':o')};
commit;
`;

/** Wall time and, on a local server, the backend's CPU time of one statement: CPU stays meaningful on a busy machine. */
async function timed(client: pg.Client, pid: number, sql: string): Promise<{ wall: number; cpu: number | null }> {
  const cpu0 = processCpuMs(pid);
  const t = performance.now();
  await client.query(sql);
  const wall = performance.now() - t;
  const cpu1 = processCpuMs(pid);
  return { wall, cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 };
}

/** Runs the superuser statements with the triggers of ordinary tables off: bench data is neither audited nor FK-checked. */
async function quietly(ctx: BenchContext, sql: string): Promise<void> {
  await ctx.query(`begin; set local session_replication_role = replica; ${sql}; commit;`);
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const seconds = Number(ctx.args[0] ?? 8);
  const rounds = Number(ctx.args[1] ?? 2);
  const funds = Number(ctx.args[2] ?? 1_000_000);
  if (!(seconds > 0 && rounds > 0 && funds >= ORGS)) throw new Error('usage: npm run bench -- access [seconds>0] [rounds>0] [funds>=1000]');

  const cleanup = async () => {
    if ((await ctx.query(`select to_regclass('bench_access.audited') is not null as present`)).rows[0].present) {
      await ctx.query(`select ballast.disable_audit('bench_access.audited')`);
    }
    await ctx.query('drop schema if exists bench_access cascade');
    await quietly(ctx, `delete from app_public.funds where org_id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.memberships where org_id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.users where id in (select ${USER('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.organizations where id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from ballast.audit_log where table_name like 'bench\\_access.%'`);
  };
  await cleanup();
  try {
    // 1 + 2: a plain, an audited and a floor-triggered copy of the same table.
    ctx.progress('setup: three 100k-row tables');
    await ctx.query('create schema bench_access');
    for (const t of COPIES) {
      await ctx.query(`create table bench_access.${t} (id int primary key, org_id uuid not null, v int not null default 0, note text not null, updated_at timestamptz not null default now())`);
      await ctx.query(`insert into bench_access.${t} (id, org_id, note) select g, ${ORG('g % 1000')}, repeat('x', 40) from generate_series(1, ${ROWS}) g`);
      await ctx.query(`vacuum analyze bench_access.${t}`);
    }
    await ctx.query(`select ballast.enable_audit('bench_access.audited')`);
    await ctx.query('create table bench_access.floor_log (like ballast.audit_log including all)');
    await ctx.query(`create function bench_access.tg_floor() returns trigger language plpgsql as $$
      begin
        insert into bench_access.floor_log (table_name, op, record_id, old_values, new_values, org_id, actor_role, txid)
        select 'bench_access.floor', 'UPDATE', lpad(to_hex(n.id), 32, '0')::uuid, to_jsonb(o), to_jsonb(n), n.org_id, 'bench', 0
          from old_table o join new_table n using (id);
        return null;
      end $$`);
    await ctx.query(`create trigger floor after update on bench_access.floor referencing old table as old_table new table as new_table
      for each statement execute function bench_access.tg_floor()`);

    const tps = perCopy<PgbenchResult[]>(() => []);
    for (let r = 1; r <= rounds; r++) {
      for (const t of COPIES) {
        ctx.progress(`single-row UPDATE, 8 clients, ${t} (round ${r}/${rounds})`);
        tps[t].push(await ctx.pgbench({ script: updateScript(t), clients: 8, seconds }));
      }
    }

    const bulk = perCopy<number[]>(() => []);
    const bulkCpu = perCopy<number[]>(() => []);
    const client = new pg.Client({ connectionString: ctx.cfg.rootUrl });
    await client.connect();
    try {
      const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      for (let r = 1; r <= Math.max(3, rounds); r++) {
        for (const t of COPIES) {
          ctx.progress(`100k-row bulk UPDATE, ${t} (round ${r})`);
          await client.query(`vacuum bench_access.${t}`);
          const { wall, cpu } = await timed(client, pid, `update bench_access.${t} set v = v + 1, updated_at = now()`);
          bulk[t].push(wall);
          if (cpu !== null) bulkCpu[t].push(cpu);
        }
      }
    } finally {
      await client.end();
    }
    const audited = (await ctx.query<{ n: string }>(`select count(*) as n from ballast.audit_log where table_name = 'bench_access.audited'`)).rows[0].n;

    // 3: 1M funds in 1,000 orgs, one member per org, loaded without triggers.
    ctx.progress(`setup: ${funds} funds in ${ORGS} organisations`);
    await quietly(ctx, `
      insert into app_public.organizations (id, name) select ${ORG('g')}, 'bench org ' || g from generate_series(1, ${ORGS}) g;
      insert into app_public.users (id, email, name) select ${USER('g')}, 'bench' || g || '@bench-access.test', 'bench user ' || g from generate_series(1, ${ORGS}) g;
      insert into app_public.memberships (org_id, user_id, role) select ${ORG('g')}, ${USER('g')}, 'member' from generate_series(1, ${ORGS}) g;
      insert into app_public.funds (org_id, name, size, irr)
        select ${ORG('(g % ' + ORGS + ') + 1')}, 'fund ' || g, (g % 997) * 1000, (g % 50) / 1000.0 from generate_series(1, ${funds}) g`);
    await ctx.query('vacuum analyze app_public.organizations, app_public.users, app_public.memberships, app_public.funds');
    const rowsPerOrg = (await ctx.query<{ n: string }>(`select count(*) as n from app_public.funds where org_id = ${ORG('1')}`)).rows[0].n;
    const listing: Record<string, PgbenchResult[]> = { owner: [], member: [] };
    for (let r = 1; r <= rounds; r++) {
      for (const side of ['owner', 'member'] as const) {
        ctx.progress(`listing an org's funds, 4 clients, ${side} (round ${r}/${rounds})`);
        listing[side].push(await ctx.pgbench({ script: side === 'owner' ? ownerListing : memberListing, clients: 4, seconds }));
      }
    }
    const failed = [...tps.plain, ...tps.audited, ...tps.floor, ...listing.owner, ...listing.member].reduce((n, x) => n + x.failed, 0);
    const med = (xs: PgbenchResult[], f: (x: PgbenchResult) => number) => median(xs.map(f));

    return report('access', [
      { metric: 'single-row UPDATE TPS, 8 clients: audit off → on', baseline: med(tps.plain, (x) => x.tps), ballast: med(tps.audited, (x) => x.tps),
        unit: 'tps', goal: { op: '>=', ratio: 0.7, text: '≥ 0.7x' } },
      { metric: 'single-row UPDATE p99 latency', baseline: med(tps.plain, (x) => x.latencyP99Ms), ballast: med(tps.audited, (x) => x.latencyP99Ms), unit: 'ms' },
      ...serverCpuRows('single-row UPDATE, server CPU per transaction', tps.plain, tps.audited),
      { metric: 'same TPS, floor trigger (same audit row, nothing else)', baseline: med(tps.plain, (x) => x.tps), ballast: med(tps.floor, (x) => x.tps), unit: 'tps',
        note: 'ballast column: a plain statement trigger that writes record_id, both jsonb images and org_id into a copy of ballast.audit_log with its indexes and does nothing else: what writing this row costs by itself' },
      ...serverCpuRows('same, floor trigger: server CPU per transaction', tps.plain, tps.floor),
      { metric: '100k-row bulk UPDATE: audit off → on', baseline: median(bulk.plain), ballast: median(bulk.audited),
        unit: 'ms', goal: { op: '<=', ratio: 3, text: '≤ 3x' } },
      ...(bulkCpu.plain.length ? [{ metric: '100k-row bulk UPDATE, backend CPU time', baseline: median(bulkCpu.plain), ballast: median(bulkCpu.audited),
        unit: 'ms cpu', note: 'CPU the backend used (from /proc): less sensitive than wall time to other load on the machine' }] : []),
      { metric: '100k-row bulk UPDATE: floor trigger (same audit rows, nothing else)', baseline: median(bulk.plain), ballast: median(bulk.floor), unit: 'ms' },
      { metric: `list own org's funds (${rowsPerOrg} of ${funds}) p50: owner+where → member+RLS`, baseline: med(listing.owner, (x) => x.latencyP50Ms),
        ballast: med(listing.member, (x) => x.latencyP50Ms), unit: 'ms', goal: { op: '<=', ratio: 1.3, text: '≤ 1.3x' } },
      { metric: `list own org's funds p99: owner+where → member+RLS`, baseline: med(listing.owner, (x) => x.latencyP99Ms),
        ballast: med(listing.member, (x) => x.latencyP99Ms), unit: 'ms', goal: { op: '<=', ratio: 1.3, text: '≤ 1.3x' } },
      { metric: `list own org's funds TPS, 4 clients`, baseline: med(listing.owner, (x) => x.tps), ballast: med(listing.member, (x) => x.tps), unit: 'tps',
        note: failed ? `${failed} pgbench transactions failed` : undefined },
    ], { seconds, rounds, funds, orgs: ORGS, auditRowsWritten: Number(audited), tps, bulk, bulkCpu, listing });
  } finally {
    ctx.progress('cleanup');
    await cleanup();
  }
}
