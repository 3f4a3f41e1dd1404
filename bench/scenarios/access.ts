// access: what tenancy and auditing cost.
//   1. single-row UPDATE TPS, 8 clients, on a 100k-row, 6-column table (goal >= 0.8x the plain UPDATE)
//   2. one 100k-row bulk UPDATE changing 2 of the 6 columns (goal <= 3x), and one that changes nothing
//   1 and 2 run four copies of the table side by side (issue 17):
//      plain  - no trigger;
//      supa   - a supa_audit-0.3.1-style row-level trigger: AFTER ... FOR EACH ROW, looks up the primary key
//               columns, writes to_jsonb(new) and to_jsonb(old) whole with a uuid record id (md5 of table oid
//               and key; supa_audit uses uuid_generate_v5) into a log with its four indexes (record_id,
//               old_record_id, BRIN on ts, table_oid) besides the primary key; written from that description;
//      floor  - "today's floor": a plain statement trigger writing both full jsonb images, record_id and org_id
//               into a copy of the 0.1.0 audit log with its indexes, nothing else;
//      ballast (the copy named audited) - ballast.enable_audit: changed columns only, no row for a no-op.
//   Each run reports bytes of log per audited UPDATE (pg_total_relation_size per log row of a fresh copy), the share of
//   the UPDATE rows that changed nothing (no audit row), and seal_audit_log() / verify_audit_log() rows/s.
//   3. a member listing their organisation's funds (1,000 of 1M funds in 1,000 orgs) through the example
//      app's RLS policies, against the owner running the same listing with an explicit where org_id = (goal <= 1.3x
//      on p50 and p99)
// Every request-shaped transaction sets request.jwt.claims and request.id like the API does, on all sides.
// Usage: npm run bench -- access [seconds per pgbench run = 8] [rounds = 2] [funds = 1000000]
import os from 'node:os';
import pg from 'pg';
import { median, report, serverCpuRows, type BenchContext, type PgbenchResult, type Row } from '../lib/harness.ts';
import { processCpuMs } from '../lib/cpu.ts';

const ROWS = 100_000;
/** The copies of the table parts 1 and 2 compare; 'audited' is ballast's. */
const COPIES = ['plain', 'supa', 'floor', 'audited'] as const;
type Copy = (typeof COPIES)[number];
const perCopy = <T>(make: () => T) => Object.fromEntries(COPIES.map((c) => [c, make()])) as Record<Copy, T>;
/** The log each copy writes to (none for plain). */
const LOG: Record<Copy, string | null> = { plain: null, supa: 'bench_access.supa_log', floor: 'bench_access.floor_log', audited: 'ballast.audit_log' };
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

const SUPA_SETUP = `
  create type bench_access.supa_op as enum ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE');
  create table bench_access.supa_log (
    id bigserial primary key, record_id uuid, old_record_id uuid, op bench_access.supa_op not null,
    ts timestamptz not null default now(), table_oid oid not null, table_schema name not null, table_name name not null,
    record jsonb, old_record jsonb);
  create index supa_log_record_id on bench_access.supa_log (record_id) where record_id is not null;
  create index supa_log_old_record_id on bench_access.supa_log (old_record_id) where old_record_id is not null;
  create index supa_log_ts on bench_access.supa_log using brin (ts);
  create index supa_log_table_oid on bench_access.supa_log (table_oid);
  create function bench_access.supa_record_id(tbl oid, pk text[], rec jsonb) returns uuid language sql immutable as
    $f$ select md5(tbl::text || ':' || (select string_agg(coalesce(rec ->> k, ''), ',' order by i) from unnest(pk) with ordinality u(k, i)))::uuid $f$;
  create function bench_access.tg_supa() returns trigger language plpgsql security definer as $f$
  declare
    pk text[];
    rec jsonb := case when TG_OP in ('INSERT', 'UPDATE') then to_jsonb(new) end;
    old_rec jsonb := case when TG_OP in ('UPDATE', 'DELETE') then to_jsonb(old) end;
  begin
    select array_agg(a.attname::text order by a.attnum) into pk
      from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
     where i.indrelid = TG_RELID and i.indisprimary;
    insert into bench_access.supa_log (record_id, old_record_id, op, table_oid, table_schema, table_name, record, old_record)
    values (case when rec is not null then bench_access.supa_record_id(TG_RELID, pk, rec) end,
            case when old_rec is not null then bench_access.supa_record_id(TG_RELID, pk, old_rec) end,
            TG_OP::bench_access.supa_op, TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME, rec, old_rec);
    return coalesce(new, old);
  end $f$;
  create trigger audit_i_u_d after insert or update or delete on bench_access.supa for each row execute function bench_access.tg_supa()`;

// today's floor: the 0.1.0 audit log's shape and indexes, written by a plain statement trigger
const FLOOR_SETUP = `
  create table bench_access.floor_log (
    id bigint generated always as identity primary key, occurred_at timestamptz not null default now(),
    table_name text not null, op ballast.audit_op not null, record_id uuid, old_values jsonb, new_values jsonb,
    changed_columns text[], actor_id text, actor_role text not null, org_id uuid, request_id text, txid bigint not null,
    application_name text);
  create index on bench_access.floor_log using brin (occurred_at);
  create index on bench_access.floor_log (record_id, id);
  create index on bench_access.floor_log (org_id, id) where org_id is not null;
  create function bench_access.tg_floor() returns trigger language plpgsql as $f$
  begin
    insert into bench_access.floor_log (table_name, op, record_id, old_values, new_values, org_id, actor_role, txid)
    select 'bench_access.floor', 'UPDATE', lpad(to_hex(n.id), 32, '0')::uuid, to_jsonb(o), to_jsonb(n), n.org_id, 'bench', 0
      from old_table o join new_table n using (id);
    return null;
  end $f$;
  create trigger floor after update on bench_access.floor referencing old table as old_table new table as new_table
    for each statement execute function bench_access.tg_floor()`;

export async function run(ctx: BenchContext): Promise<boolean> {
  const seconds = Number(ctx.args[0] ?? 8);
  const rounds = Number(ctx.args[1] ?? 2);
  const funds = Number(ctx.args[2] ?? 1_000_000);
  if (!(seconds > 0 && rounds > 0 && funds >= ORGS)) throw new Error('usage: npm run bench -- access [seconds>0] [rounds>0] [funds>=1000]');

  // pg_cron would seal the log every minute in the middle of the runs: paused for the bench, resumed after
  const sealJob = async (active: boolean) => {
    if ((await ctx.query(`select to_regclass('cron.job') is not null as present`)).rows[0].present) {
      await ctx.query(`select cron.alter_job(jobid, active => $1) from cron.job where jobname = 'ballast_seal_audit_log'`, [active]);
    }
  };
  const cleanup = async () => {
    if ((await ctx.query(`select to_regclass('bench_access.audited') is not null as present`)).rows[0].present) {
      await ctx.query(`select ballast.disable_audit('bench_access.audited')`);
    }
    await ctx.query('drop schema if exists bench_access cascade');
    // a bench database: its audit rows and the seals over them go together, with the guards off
    await quietly(ctx, `delete from app_public.funds where org_id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.memberships where org_id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.users where id in (select ${USER('g')} from generate_series(1, ${ORGS}) g);
      delete from app_public.organizations where id in (select ${ORG('g')} from generate_series(1, ${ORGS}) g);
      delete from ballast.audit_log where table_name like 'bench\\_access.%';
      truncate ballast.audit_seals`);
  };
  await cleanup();
  await sealJob(false);
  try {
    // 1 + 2: the four copies of the same table.
    ctx.progress('setup: four 100k-row tables');
    await ctx.query('create schema bench_access');
    for (const t of COPIES) {
      await ctx.query(`create table bench_access.${t} (id int primary key, org_id uuid not null, v int not null default 0, note text not null,
        status text not null default 'open', updated_at timestamptz not null default now())`);
      await ctx.query(`insert into bench_access.${t} (id, org_id, note) select g, ${ORG('g % 1000')}, repeat('x', 40) from generate_series(1, ${ROWS}) g`);
      await ctx.query(`vacuum analyze bench_access.${t}`);
    }
    await ctx.query(`select ballast.enable_audit('bench_access.audited')`);
    await ctx.query(SUPA_SETUP);
    await ctx.query(FLOOR_SETUP);
    await ctx.query('select ballast.seal_audit_log()');  // what the log held before: sealed now, not counted below

    // Bytes per log row: the rows a phase wrote, copied into a fresh table with the log's indexes (so free
    // space left by earlier runs in a log does not hide its growth), pg_total_relation_size / rows.
    const marks = async () => {
      const out = perCopy<number>(() => 0);
      for (const c of COPIES) {
        const log = LOG[c];
        if (log) out[c] = Number((await ctx.query<{ id: string | null }>(`select max(id) as id from ${log}`)).rows[0].id ?? 0);
      }
      return out;
    };
    const perRow = async (since: Record<Copy, number>) => {
      const out = perCopy<number>(() => 0);
      for (const c of COPIES) {
        const log = LOG[c];
        if (!log) continue;
        const mine = c === 'audited' ? ` and table_name = 'bench_access.audited'` : '';
        await ctx.query(`create table bench_access.size_probe (like ${log} including indexes)`);
        try {
          await ctx.query(`insert into bench_access.size_probe select * from ${log} where id > ${since[c]}${mine}`);
          const r = (await ctx.query<{ bytes: string; rows: string }>(`select pg_total_relation_size('bench_access.size_probe') as bytes, count(*) as rows from bench_access.size_probe`)).rows[0];
          out[c] = Number(r.rows) > 0 ? Number(r.bytes) / Number(r.rows) : 0;
        } finally {
          await ctx.query('drop table bench_access.size_probe');
        }
      }
      return out;
    };

    const tps = perCopy<PgbenchResult[]>(() => []);
    const before1 = await marks();
    for (let r = 1; r <= rounds; r++) {
      for (const t of COPIES) {
        ctx.progress(`single-row UPDATE, 8 clients, ${t} (round ${r}/${rounds})`);
        tps[t].push(await ctx.pgbench({ script: updateScript(t), clients: 8, seconds }));
      }
    }
    const singleBytes = await perRow(before1);
    const singleUpdates = tps.audited.reduce((n, x) => n + x.transactions, 0);

    const bulk = perCopy<number[]>(() => []);
    const bulkCpu = perCopy<number[]>(() => []);
    const noop = perCopy<number[]>(() => []);
    let bulkBytes = perCopy<number>(() => 0);
    const client = new pg.Client({ connectionString: ctx.cfg.rootUrl });
    await client.connect();
    try {
      const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      const before2 = await marks();
      for (let r = 1; r <= Math.max(3, rounds); r++) {
        for (const t of COPIES) {
          ctx.progress(`100k-row bulk UPDATE of 2 of 6 columns, ${t} (round ${r})`);
          await client.query(`vacuum bench_access.${t}`);
          const { wall, cpu } = await timed(client, pid, `update bench_access.${t} set v = v + 1, updated_at = now()`);
          bulk[t].push(wall);
          if (cpu !== null) bulkCpu[t].push(cpu);
        }
      }
      bulkBytes = await perRow(before2);
      for (const t of COPIES) {
        ctx.progress(`100k-row UPDATE that changes nothing, ${t}`);
        await client.query(`vacuum bench_access.${t}`);
        noop[t].push((await timed(client, pid, `update bench_access.${t} set note = note`)).wall);
      }
    } finally {
      await client.end();
    }
    const bulkUpdates = Math.max(3, rounds) * ROWS;
    const audited = Number((await ctx.query<{ n: string }>(`select count(*) as n from ballast.audit_log where table_name = 'bench_access.audited'`)).rows[0].n);
    const updatedRows = singleUpdates + bulkUpdates + ROWS; // the no-op statement updated ROWS rows too
    const skipped = updatedRows - audited;

    // sealing and verifying what the runs wrote (the seal job was paused, so it is all unsealed)
    ctx.progress('seal_audit_log() over the rows the runs wrote');
    const sealClient = new pg.Client({ connectionString: ctx.cfg.rootUrl });
    await sealClient.connect();
    let seal: { rows: number; ms: number; cpu: number | null };
    let verify: { rows: number; ms: number; cpu: number | null; ok: boolean };
    try {
      const pid = (await sealClient.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      let t0 = performance.now();
      let c0 = processCpuMs(pid);
      const sealed = (await sealClient.query<{ rows_sealed: number }>('select rows_sealed from ballast.seal_audit_log()')).rows;
      let c1 = processCpuMs(pid);
      seal = { rows: sealed.reduce((n, r) => n + r.rows_sealed, 0), ms: performance.now() - t0, cpu: c0 === null || c1 === null ? null : c1 - c0 };
      ctx.progress('verify_audit_log() over every sealed row');
      const total = Number((await sealClient.query<{ n: string }>(`select coalesce(sum(row_count), 0) as n from ballast.audit_seals where kind = 'seal'`)).rows[0].n);
      t0 = performance.now();
      c0 = processCpuMs(pid);
      const checks = (await sealClient.query<{ check_name: string; ok: boolean; detail: string }>('select * from ballast.verify_audit_log()')).rows;
      c1 = processCpuMs(pid);
      verify = { rows: total, ms: performance.now() - t0, cpu: c0 === null || c1 === null ? null : c1 - c0, ok: checks.every((c) => c.ok) };
      if (!verify.ok) ctx.progress(`verify_audit_log() found: ${checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`);
    } finally {
      await sealClient.end();
    }

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
    const failed = [...COPIES.flatMap((c) => tps[c]), ...listing.owner, ...listing.member].reduce((n, x) => n + x.failed, 0);
    const med = (xs: PgbenchResult[], f: (x: PgbenchResult) => number) => median(xs.map(f));
    const tpsOf = (c: Copy) => med(tps[c], (x) => x.tps);
    const rate = (rows: number, ms: number) => (ms > 0 ? rows / (ms / 1000) : 0);
    const rows: Row[] = [
      { metric: 'single-row UPDATE TPS, 8 clients: plain → ballast', baseline: tpsOf('plain'), ballast: tpsOf('audited'),
        unit: 'tps', goal: { op: '>=', ratio: 0.8, text: '≥ 0.8x' } },
      { metric: 'same: plain → supa_audit-style row trigger', baseline: tpsOf('plain'), ballast: tpsOf('supa'), unit: 'tps' },
      { metric: 'same: plain → today\'s floor', baseline: tpsOf('plain'), ballast: tpsOf('floor'), unit: 'tps' },
      { metric: 'same: supa_audit-style → ballast', baseline: tpsOf('supa'), ballast: tpsOf('audited'), unit: 'tps', goal: { op: '>=', ratio: 1, text: 'ahead' } },
      { metric: 'single-row UPDATE p99 latency: plain → ballast', baseline: med(tps.plain, (x) => x.latencyP99Ms), ballast: med(tps.audited, (x) => x.latencyP99Ms), unit: 'ms' },
      ...serverCpuRows('single-row UPDATE, server CPU per transaction: plain → ballast', tps.plain, tps.audited),
      ...serverCpuRows('same CPU: plain → supa_audit-style', tps.plain, tps.supa),
      ...serverCpuRows('same CPU: plain → today\'s floor', tps.plain, tps.floor),
      { metric: '100k-row bulk UPDATE, 2 of 6 columns: plain → ballast', baseline: median(bulk.plain), ballast: median(bulk.audited),
        unit: 'ms', goal: { op: '<=', ratio: 3, text: '≤ 3x' } },
      { metric: 'same: plain → supa_audit-style', baseline: median(bulk.plain), ballast: median(bulk.supa), unit: 'ms' },
      { metric: 'same: plain → today\'s floor', baseline: median(bulk.plain), ballast: median(bulk.floor), unit: 'ms' },
      { metric: 'same: supa_audit-style → ballast', baseline: median(bulk.supa), ballast: median(bulk.audited), unit: 'ms', goal: { op: '<=', ratio: 1, text: 'ahead' } },
      ...(bulkCpu.plain.length ? [
        { metric: 'bulk UPDATE, backend CPU: plain → ballast', baseline: median(bulkCpu.plain), ballast: median(bulkCpu.audited),
          unit: 'ms cpu', note: 'CPU the backend used (from /proc): less sensitive than wall time to other load on the machine' },
        { metric: 'bulk UPDATE, backend CPU: plain → today\'s floor', baseline: median(bulkCpu.plain), ballast: median(bulkCpu.floor), unit: 'ms cpu' },
        { metric: 'bulk UPDATE, backend CPU: plain → supa_audit-style', baseline: median(bulkCpu.plain), ballast: median(bulkCpu.supa), unit: 'ms cpu' },
      ] : []),
      { metric: 'log bytes per single-column UPDATE: today\'s floor → ballast', baseline: singleBytes.floor, ballast: singleBytes.audited, unit: 'bytes',
        goal: { op: '<=', ratio: 1 / 3, text: '≤ 1/3' },
        note: 'the rows each log got from the single-row runs (one per UPDATE), copied into a fresh table with that log\'s indexes: pg_total_relation_size / rows. ballast\'s rows also carry actor, request id and application name, the floor\'s do not' },
      { metric: 'same bytes: supa_audit-style → ballast', baseline: singleBytes.supa, ballast: singleBytes.audited, unit: 'bytes', goal: { op: '<=', ratio: 1, text: 'ahead' } },
      { metric: 'log bytes per row of the bulk UPDATE (2 columns): today\'s floor → ballast', baseline: bulkBytes.floor, ballast: bulkBytes.audited, unit: 'bytes',
        note: `supa_audit-style: ${Math.round(bulkBytes.supa)} bytes a row` },
      { metric: '100k-row UPDATE that changes nothing: plain → ballast', baseline: median(noop.plain), ballast: median(noop.audited), unit: 'ms',
        note: `today's floor ${Math.round(median(noop.floor))} ms, supa_audit-style ${Math.round(median(noop.supa))} ms; both write a row per updated row` },
      { metric: 'UPDATE rows that changed nothing (no audit row written): of all rows updated on ballast\'s copy', baseline: updatedRows, ballast: skipped, unit: 'rows',
        note: 'the ratio is the no-op share of this workload: the no-op statement\'s 100k rows; every other UPDATE changed v' },
      { metric: 'seal_audit_log(): rows sealed per second (baseline column: the goal)', baseline: 50_000, ballast: rate(seal.rows, seal.ms), unit: 'rows/s',
        goal: { op: '>=', value: 50_000, text: '≥ 50k/s' },
        note: `${seal.rows} rows in ${Math.round(seal.ms)} ms${seal.cpu === null ? '' : `, ${Math.round(seal.cpu)} ms backend CPU`}` },
      { metric: 'verify_audit_log(): sealed rows re-checked per second (baseline column: the goal)', baseline: 100_000, ballast: rate(verify.rows, verify.ms), unit: 'rows/s',
        goal: { op: '>=', value: 100_000, text: '≥ 100k/s' },
        note: `${verify.rows} rows in ${Math.round(verify.ms)} ms${verify.cpu === null ? '' : `, ${Math.round(verify.cpu)} ms backend CPU`}; all checks ok: ${verify.ok}` },
      { metric: `list own org's funds (${rowsPerOrg} of ${funds}) p50: owner+where → member+RLS`, baseline: med(listing.owner, (x) => x.latencyP50Ms),
        ballast: med(listing.member, (x) => x.latencyP50Ms), unit: 'ms', goal: { op: '<=', ratio: 1.3, text: '≤ 1.3x' } },
      { metric: `list own org's funds p99: owner+where → member+RLS`, baseline: med(listing.owner, (x) => x.latencyP99Ms),
        ballast: med(listing.member, (x) => x.latencyP99Ms), unit: 'ms', goal: { op: '<=', ratio: 1.3, text: '≤ 1.3x' } },
      { metric: `list own org's funds TPS, 4 clients`, baseline: med(listing.owner, (x) => x.tps), ballast: med(listing.member, (x) => x.tps), unit: 'tps',
        note: failed ? `${failed} pgbench transactions failed` : undefined },
    ];
    return report('access', rows, { seconds, rounds, funds, orgs: ORGS, load: os.loadavg(), auditRowsWritten: audited, updatedRows, skipped,
      singleBytes, bulkBytes, seal, verify, tps, bulk, bulkCpu, noop, listing });
  } finally {
    ctx.progress('cleanup');
    await cleanup();
    await sealJob(true);
  }
}
