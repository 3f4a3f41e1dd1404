// api: what the production API's middleware costs. A GraphQL query listing 20 funds as a member,
// 32 autocannon connections, against (baseline) bare PostGraphile with the same preset and a fixed
// member identity (bench/lib/api_bare_server.ts) and (ballast) the full API process (example/server.ts:
// request id, pino-http logging at info, metrics, tracing into ballast.performance_metrics, CORS,
// body limits, JWT verification, the rate limiter's token reservations, query limits).
//
// Fixture: one bench organisation with 1,000 funds inserted as the superuser and a member of it (a
// memberships row), so both servers read through the app's own RLS policy `funds_select` (sql/app.sql);
// `grant select on app_public.funds to ballast_member` only if not granted already. All removed at the
// end, with the traces and buckets.
//
//   npm run bench -- api [seconds per run = 15] [rounds = 2] [connections = 32]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import autocannon from 'autocannon';
import { SignJWT } from 'jose';
import { ROOT } from '../../scripts/lib/config.ts';
import { median, report, type BenchContext, type Row } from '../lib/harness.ts';
import { cpuUsPer, localPostmaster, processCpuMs, serverCpuMs } from '../lib/cpu.ts';

const SECRET = 'bench-api-secret-0123456789abcdef0123456789abcdef';
const QUERY = 'query ListFunds { allFunds(first: 20, orderBy: [PRIMARY_KEY_ASC]) { nodes { id name size irr } } }';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function startServer(script: string, env: Record<string, string>): Promise<{ url: string; proc: ChildProcess; stderr: () => string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--conditions=ballast-source', path.join(ROOT, script)], {
    cwd: ROOT, env: { ...process.env, PORT: String(port), GRAPHILE_ENV: 'production', ...env }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => { err += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${script} exited ${proc.exitCode}: ${err}`);
    try {
      const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
      if (r.ok) return { url, proc, stderr: () => err };
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${script} did not start: ${err}`);
}

async function stopServer(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/** One load run; the CPU figures are µs per request (NaN where /proc cannot tell: another OS, a remote database). */
type Run = { rps: number; p50: number; p99: number; non2xx: number; errors: number; requests: number; apiCpuUs: number; dbCpuUs: number; loadCpuUs: number };

/** CPU ms of: the server process, the database cluster, this process (autocannon's load generation). */
function cpuNow(serverPid: number | undefined, postmaster: number | null): [number | null, number | null, number] {
  const own = process.cpuUsage();
  return [serverPid === undefined ? null : processCpuMs(serverPid), postmaster === null ? null : serverCpuMs(postmaster), (own.user + own.system) / 1000];
}

async function load(server: { url: string; proc: ChildProcess }, headers: Record<string, string>, seconds: number, connections: number, postmaster: number | null): Promise<Run> {
  const before = cpuNow(server.proc.pid, postmaster);
  const r = await autocannon({
    url: `${server.url}/graphql`, method: 'POST', connections, duration: seconds,
    headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: QUERY }),
  });
  const after = cpuNow(server.proc.pid, postmaster);
  const perRequest = (i: number) => cpuUsPer(before[i], after[i], r['2xx'] + r.non2xx);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors, requests: r['2xx'],
    apiCpuUs: perRequest(0), dbCpuUs: perRequest(1), loadCpuUs: perRequest(2) };
}

export async function run(ctx: BenchContext): Promise<boolean> {
  const seconds = Number(ctx.args[0] ?? 15);
  const rounds = Number(ctx.args[1] ?? 2);
  const connections = Number(ctx.args[2] ?? 32);
  const orgId = randomUUID();
  const userId = randomUUID();
  const startedAt = new Date();
  const postmaster = localPostmaster(ctx.cfg);

  ctx.progress('fixture: 1,000 funds, a member, a policy');
  const granted = (await ctx.query<{ g: boolean }>(`select has_table_privilege('ballast_member', 'app_public.funds', 'select') as g`)).rows[0].g;
  await ctx.query(`insert into app_public.organizations (id, name) values ($1, 'bench api org')`, [orgId]);
  await ctx.query(`insert into app_public.users (id, email, name) values ($1, $2, 'bench api member')`, [userId, `bench-api-${userId}@example.com`]);
  await ctx.query(`insert into app_public.memberships (org_id, user_id, role) values ($1, $2, 'member')`, [orgId, userId]);
  await ctx.query(`insert into app_public.funds (org_id, name, size, irr)
    select $1, 'Fund ' || i, (i * 1000000)::numeric, (i % 20) / 100.0 from generate_series(1, 1000) i`, [orgId]);
  if (!granted) await ctx.query('grant select on app_public.funds to ballast_member');

  const claims = { sub: userId, org_id: orgId, role: 'member' };
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ ...claims, iat: now, exp: now + 3600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
  const common = { AUTH_DATABASE_URL: ctx.cfg.authUrl, DB_POOL_MAX: '10', LOG_LEVEL: 'info' };
  const servers: ChildProcess[] = [];
  const base: Run[] = [];
  const full: Run[] = [];
  let traceRows = 0;
  let limiter = { takes: 0, requests: 0 };
  try {
    const bare = await startServer('bench/lib/api_bare_server.ts', { ...common, BENCH_CLAIMS: JSON.stringify(claims) });
    servers.push(bare.proc);
    const api = await startServer('example/server.ts', {
      ...common, JWT_SECRET: SECRET, RATE_LIMIT_QUERY: '1000000000:1000000', RATE_LIMIT_MUTATION: '1000000000:1000000',
      CORS_ORIGINS: 'https://app.example.com',
    });
    servers.push(api.proc);

    // Both answer the same 20 funds.
    const check = async (url: string, headers: Record<string, string>) => {
      const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: QUERY }) });
      const body = (await r.json()) as { data?: { allFunds?: { nodes: unknown[] } } };
      if (r.status !== 200 || body.data?.allFunds?.nodes.length !== 20) throw new Error(`${url} did not list 20 funds: ${r.status} ${JSON.stringify(body).slice(0, 300)}`);
    };
    await check(bare.url, {});
    await check(api.url, { authorization: `Bearer ${token}` });

    ctx.progress('warm-up');
    await load(bare, {}, 3, connections, postmaster);
    await load(api, { authorization: `Bearer ${token}` }, 3, connections, postmaster);
    for (let i = 0; i < rounds; i++) {
      ctx.progress(`round ${i + 1}/${rounds}: bare PostGraphile`);
      base.push(await load(bare, {}, seconds, connections, postmaster));
      ctx.progress(`round ${i + 1}/${rounds}: ballast API`);
      full.push(await load(api, { authorization: `Bearer ${token}` }, seconds, connections, postmaster));
    }
    // the rate limiter's round trips to the shared bucket, per GraphQL request (all of one subject: the hot-row case)
    const metricsText = await (await fetch(`${api.url}/metrics`)).text();
    const counter = (re: RegExp) => [...metricsText.matchAll(re)].reduce((n, x) => n + Number(x[1]), 0);
    limiter = { takes: counter(/^ballast_rate_limit_db_takes_total (\d+)/gm), requests: counter(/^graphql_operations_total\{[^}]*\} (\d+)/gm) };
    await stopServer(api.proc); // flushes its trace buffer
    traceRows = (await ctx.query<{ n: number }>('select count(*)::int as n from ballast.performance_metrics where user_id = $1', [userId])).rows[0].n;
  } finally {
    for (const p of servers) await stopServer(p);
    ctx.progress('cleanup');
    if (!granted) await ctx.query('revoke select on app_public.funds from ballast_member');
    await ctx.query('delete from app_public.organizations where id = $1', [orgId]);
    await ctx.query('delete from app_public.users where id = $1', [userId]);
    await ctx.query('delete from ballast.performance_metrics where user_id = $1 and created_at >= $2', [userId, startedAt]);
    await ctx.query('delete from ballast.rate_limit_buckets where bucket like $1', [`%:sub:${userId}`]);
  }

  // median over the runs that have the figure (a CPU reading can be missing, see cpuUsPer)
  const m = (runs: Run[], k: keyof Run) => median(runs.map((r) => r[k]).filter(Number.isFinite));
  // Where each request's CPU goes. Server, database and load generator share this machine's cores, so a
  // side that costs more CPU per request also slows the other two: these rows tell cost from noise.
  function cpuRows(b: Run[], f: Run[]) {
    const rows = ([
      ['CPU per request: API process (node)', 'apiCpuUs'],
      ['CPU per request: PostgreSQL (every server process)', 'dbCpuUs'],
      ['CPU per request: load generator (autocannon)', 'loadCpuUs'],
    ] as const).map(([metric, key]): Row => ({ metric, baseline: m(b, key), ballast: m(f, key), unit: 'µs cpu' }));
    const out = rows.filter((r) => Number.isFinite(r.baseline) && Number.isFinite(r.ballast));
    if (out.length === rows.length) {
      out.push({ metric: 'CPU per request: all three', unit: 'µs cpu',
        baseline: out.reduce((n, r) => n + r.baseline, 0), ballast: out.reduce((n, r) => n + r.ballast, 0),
        note: 'the machine is CPU-bound under this load, so 1 / this ratio is the throughput ratio the extra work allows; the measured req/s also moves with the neighbours' });
    }
    return out;
  }
  const failures = [...base, ...full].reduce((n, r) => n + r.non2xx + r.errors, 0);
  const served = full.reduce((n, r) => n + r.requests, 0);
  return report('api', [
    { metric: `ListFunds (20 funds as a member), ${connections} connections, throughput`, baseline: m(base, 'rps'), ballast: m(full, 'rps'), unit: 'req/s',
      goal: { op: '>=', ratio: 0.8, text: '≥ 0.8x' }, note: `median of ${rounds} runs of ${seconds} s each; ${failures} non-2xx or errors in all runs` },
    { metric: 'latency p50', baseline: m(base, 'p50'), ballast: m(full, 'p50'), unit: 'ms' },
    { metric: 'latency p99', baseline: m(base, 'p99'), ballast: m(full, 'p99'), unit: 'ms', goal: { op: '<=', value: 50, text: '≤ 50 ms' } },
    ...cpuRows(base, full),
    { metric: 'rate-limit round trips to PostgreSQL / GraphQL requests', baseline: limiter.requests, ballast: limiter.takes, unit: 'trips',
      note: 'baseline column: requests; one subject at 32 connections, tokens reserved in batches (api/rate_limit.ts)' },
    { metric: 'trace rows written / requests served (full stack)', baseline: served, ballast: traceRows, unit: 'rows',
      note: 'warm-up and check requests are traced too, so rows can exceed the requests measured' },
  ], { seconds, rounds, connections, base, full, limiter });
}
