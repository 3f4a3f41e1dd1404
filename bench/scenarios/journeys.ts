// journeys: realistic traffic through a real API process, k6-style. Virtual users pick a journey by the
// seeds' mix — 80% viewers (list funds, open one), 15% creators (create a fund with an Idempotency-Key,
// then update it), 5% admins (org report: funds and memberships, then the audit log) — with think time between steps.
// Reports p50/p95/p99 and error rate per journey against thresholds (p95 < 300 ms, errors < 0.1%), writes
// bench/results/journeys.json and an SVG chart of latency over time, bench/results/journeys.svg.
// Args: [seconds=30] [virtualUsers=20] [thinkMs=200]. Users and orgs are created with a 'bench-journeys'
// marker and deleted at the end. Needs the API's JWT verification (JWT_SECRET, HS256; api/jwt.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SignJWT } from 'jose';
import { ROOT } from '../../scripts/lib/config.ts';
import { formatTable } from '../../src/table.ts';
import { percentile, report, type BenchContext, type Row } from '../lib/harness.ts';

const SECRET = 'bench-journeys-secret-at-least-32-characters-long';
const JOURNEYS = [{ name: 'viewer', weight: 0.8 }, { name: 'creator', weight: 0.15 }, { name: 'admin', weight: 0.05 }] as const;
type Journey = (typeof JOURNEYS)[number]['name'];
type Sample = { journey: Journey; step: string; at: number; ms: number; ok: boolean };

export async function run(ctx: BenchContext): Promise<boolean> {
  const seconds = Number(ctx.args[0] ?? 30);
  const vus = Number(ctx.args[1] ?? 20);
  const thinkMs = Number(ctx.args[2] ?? 200);
  const cleanup = `delete from app_public.organizations where name like 'bench-journeys%';
                   delete from app_public.users where email like 'bench-journeys-%';
                   delete from ballast.idempotency_keys where key like 'bench-journeys-%';`;
  await ctx.query(cleanup);
  // Two orgs, each with 10 members, 2 admins who read reports and 20 admins who create funds, and 50 funds.
  // Creators are distinct users, as in life: the API's default mutation limit (burst 60, 1/s per user)
  // is meant for one person's pace, and the journey's pace per creator stays well under it.
  const people = (await ctx.query<{ user_id: string; org_id: string; role: string; n: number }>(`
    with o as (insert into app_public.organizations (name) select 'bench-journeys ' || i from generate_series(1, 2) i returning id),
         u as (insert into app_public.users (email, name) select 'bench-journeys-' || i || '@example.com', 'bench user ' || i
               from generate_series(1, 64) i returning id, split_part(split_part(email, '-', 3), '@', 1)::int as n),
         m as (insert into app_public.memberships (org_id, user_id, role)
               select (select id from o order by id offset (u.n % 2) limit 1), u.id, case when u.n <= 4 or u.n > 24 then 'admin' else 'member' end from u
               returning org_id, user_id, role),
         f as (insert into app_public.funds (org_id, name, size) select o.id, 'bench-journeys fund ' || i, i * 1000 from o, generate_series(1, 50) i)
    select m.user_id::text, m.org_id::text, m.role, u.n from m join u on u.id = m.user_id`)).rows;
  const token = async (p: { user_id: string; org_id: string; role: string }) =>
    new SignJWT({ org_id: p.org_id, role: p.role }).setProtectedHeader({ alg: 'HS256' }).setSubject(p.user_id)
      .setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
  const members = await Promise.all(people.filter((p) => p.role === 'member').map(async (p) => ({ ...p, jwt: await token(p) })));
  const admins = await Promise.all(people.filter((p) => p.role === 'admin' && p.n <= 4).map(async (p) => ({ ...p, jwt: await token(p) })));
  const creators = await Promise.all(people.filter((p) => p.role === 'admin' && p.n > 24).map(async (p) => ({ ...p, jwt: await token(p) })));

  const api = await startApiProcess(ctx.cfg.authUrl);
  const samples: Sample[] = [];
  const t0 = performance.now();
  const firstErrors: Partial<Record<Journey, string>> = {};
  const gql = async (journey: Journey, step: string, jwt: string, query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<any> => {
    const start = performance.now();
    let ok = false;
    let data: any = null;
    try {
      const r = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}`, ...headers }, body: JSON.stringify({ query, variables }) });
      const body = await r.json() as { data?: any; errors?: unknown[] };
      ok = r.status === 200 && !body.errors;
      if (!ok) firstErrors[journey] ??= `${step}: ${r.status} ${JSON.stringify(body.errors ?? body).slice(0, 200)}`;
      data = body.data;
    } catch { ok = false; }
    const end = performance.now();
    samples.push({ journey, step, at: (start - t0) / 1000, ms: end - start, ok });
    return data;
  };
  const think = () => new Promise((r) => setTimeout(r, thinkMs * (0.5 + Math.random())));
  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
  let seq = 0;
  const journeys: Record<Journey, () => Promise<void>> = {
    viewer: async () => {
      const u = pick(members);
      const list = await gql('viewer', 'list funds', u.jwt, '{ allFunds(first: 20, orderBy: PRIMARY_KEY_ASC) { totalCount nodes { rowId name size } } }');
      await think();
      const nodes = (list?.allFunds?.nodes ?? [{ rowId: '1' }]) as { rowId: string }[];
      const id = pick(nodes).rowId;
      await gql('viewer', 'open fund', u.jwt, 'query($id: BigInt!) { fundByRowId(rowId: $id) { rowId name size irr createdAt } }', { id });
    },
    creator: async () => {
      const u = pick(creators);
      const key = `bench-journeys-${process.pid}-${++seq}`;
      const created = await gql('creator', 'create fund', u.jwt, 'mutation($f: FundInput!) { createFund(input: { fund: $f }) { fund { rowId } } }',
        { f: { orgId: u.org_id, name: `bench-journeys new ${seq}`, size: '1000' } }, { 'idempotency-key': key });
      await think();
      const id = created?.createFund?.fund?.rowId;
      if (id) await gql('creator', 'update fund', u.jwt, 'mutation($id: BigInt!) { updateFundByRowId(input: { rowId: $id, fundPatch: { size: "2000" } }) { fund { rowId } } }', { id });
    },
    admin: async () => {
      const u = pick(admins);
      await gql('admin', 'org report', u.jwt, '{ allFunds { totalCount nodes { size } } allMemberships { totalCount nodes { role userId } } }');
      await think();
      await gql('admin', 'members', u.jwt, '{ allUsers(first: 50) { nodes { rowId name email } } }');
      await think();
      await gql('admin', 'audit log', u.jwt, '{ auditLog(first: 25) { pageInfo { hasNextPage } nodes { rowId occurredAt tableName op actorName requestId } } }');
    },
  };
  const chooseJourney = (): Journey => {
    let r = Math.random();
    for (const j of JOURNEYS) { if ((r -= j.weight) < 0) return j.name; }
    return 'viewer';
  };
  ctx.progress(`${vus} virtual users, ${seconds} s, think time ~${thinkMs} ms`);
  const deadline = Date.now() + seconds * 1000;
  const counts: Record<Journey, number> = { viewer: 0, creator: 0, admin: 0 };
  try {
    await Promise.all(Array.from({ length: vus }, async () => {
      while (Date.now() < deadline) {
        const j = chooseJourney();
        counts[j]++;
        await journeys[j]();
        await think();
      }
    }));
  } finally {
    await api.stop();
    await ctx.query(cleanup);
  }

  const per = JOURNEYS.map(({ name }) => {
    const s = samples.filter((x) => x.journey === name);
    const ms = s.map((x) => x.ms);
    const errors = s.filter((x) => !x.ok).length;
    const p95 = percentile(ms, 95);
    const errorRate = s.length ? errors / s.length : 1;
    return { journey: name, journeys: counts[name], requests: s.length, p50: percentile(ms, 50), p95, p99: percentile(ms, 99), errorRate, pass: s.length > 0 && p95 < 300 && errorRate < 0.001 };
  });
  process.stdout.write('\n' + formatTable(['journey', 'runs', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'p95 < 300 ms, errors < 0.1%'],
    per.map((p) => [p.journey, String(p.journeys), String(p.requests), p.p50.toFixed(1), p.p95.toFixed(1), p.p99.toFixed(1), `${(p.errorRate * 100).toFixed(3)}%`, p.pass ? 'PASS' : 'FAIL'])));
  for (const [j, e] of Object.entries(firstErrors)) process.stdout.write(`  first ${j} error: ${e}\n`);
  const svg = path.join(ROOT, 'bench', 'results', 'journeys.svg');
  fs.mkdirSync(path.dirname(svg), { recursive: true });
  fs.writeFileSync(svg, chart(samples, seconds));
  process.stdout.write(`written ${path.relative(ROOT, svg)}\n`);
  // The harness table: the threshold as "baseline", the measured value as "ballast".
  const rows: Row[] = per.flatMap((p) => [
    { metric: `${p.journey} p95 latency`, baseline: 300, ballast: p.p95, unit: 'ms', goal: { op: '<=' as const, value: 300, text: '< 300 ms' } },
    { metric: `${p.journey} error rate`, baseline: 0.1, ballast: Math.max(p.errorRate * 100, 0), unit: '%', goal: { op: '<=' as const, value: 0.1, text: '< 0.1%' } },
  ]);
  const ok = report('journeys', rows, { seconds, vus, thinkMs, journeys: per, firstErrors });
  return ok && per.every((p) => p.pass);
}

/** Latency over time: one dot per request, a colour per journey, p95 per 1 s bucket as a line. */
function chart(samples: Sample[], seconds: number): string {
  const W = 900, H = 400, L = 50, B = 30;
  const maxMs = Math.max(50, percentile(samples.map((s) => s.ms), 99.9) * 1.1);
  const x = (t: number) => L + (t / seconds) * (W - L - 10);
  const y = (ms: number) => H - B - (Math.min(ms, maxMs) / maxMs) * (H - B - 10);
  const colours: Record<Journey, string> = { viewer: '#1f77b4', creator: '#ff7f0e', admin: '#2ca02c' };
  const dots = samples.map((s) => `<circle cx="${x(s.at).toFixed(1)}" cy="${y(s.ms).toFixed(1)}" r="1.5" fill="${s.ok ? colours[s.journey] : 'red'}" opacity="0.5"/>`).join('');
  const lines = JOURNEYS.map(({ name }) => {
    const pts: string[] = [];
    for (let t = 0; t < seconds; t++) {
      const ms = samples.filter((s) => s.journey === name && s.at >= t && s.at < t + 1).map((s) => s.ms);
      if (ms.length) pts.push(`${x(t + 0.5).toFixed(1)},${y(percentile(ms, 95)).toFixed(1)}`);
    }
    return `<polyline points="${pts.join(' ')}" fill="none" stroke="${colours[name]}" stroke-width="2"/>`;
  }).join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${L - 5}" y="${y(maxMs * f) + 4}" text-anchor="end" font-size="10">${Math.round(maxMs * f)}</text>`).join('');
  const legend = JOURNEYS.map(({ name }, i) => `<text x="${L + 10 + i * 90}" y="20" fill="${colours[name]}" font-size="12">${name} (p95/s)</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="black"/>
<line x1="${L}" y1="${y(300)}" x2="${W - 10}" y2="${y(300)}" stroke="red" stroke-dasharray="4"/>
${ticks}<text x="${W / 2}" y="${H - 5}" text-anchor="middle" font-size="11">seconds (latency ms on the left; red dashes: 300 ms; red dots: errors)</text>
${legend}${dots}${lines}</svg>\n`;
}

async function startApiProcess(authUrl: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  const proc = spawn(process.execPath, ['--conditions=ballast-source', path.join(ROOT, 'example', 'server.ts')], {
    cwd: ROOT, env: { ...process.env, AUTH_DATABASE_URL: authUrl, PORT: String(port), LOG_LEVEL: 'warn', JWT_SECRET: SECRET }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`the API exited ${proc.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`${url}/health/ready`)).status === 200) break;
    } catch { /* not up yet */ }
    if (i > 200) throw new Error(`the API did not become ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}
