// Shared helpers for node:test suites: real processes and real connections, cleaned up after.
import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { ROOT, apiEnv, dbConfig, workerEnv } from '../scripts/lib/config.ts';

export const cfg = dbConfig();

/**
 * In npm test's pass through PgBouncer (transaction mode), the authenticator's URL through it
 * (scripts/lib/pgbouncer.ts); startApi sends the API's connections there. Undefined in the direct pass.
 */
export const pgBouncerUrl = process.env.BALLAST_TEST_PGBOUNCER_URL || undefined;

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export type Proc = { proc: ChildProcess; output: () => string; exited: Promise<number | null> };

// Every process a test starts, until it exits. A test that fails half-way must not leave a worker
// running: it would take the next tests' jobs, and its open pipes would keep this file from ending.
const live = new Set<Proc>();
after(async () => {
  const left = [...live];
  for (const p of left) p.proc.kill('SIGKILL');
  await Promise.all(left.map((p) => p.exited));
});
process.once('exit', () => { for (const p of live) p.proc.kill('SIGKILL'); });

/**
 * Node's flags for a process of this checkout: `ballast-source` resolves the package's own names
 * (ballast, ballast/postgraphile, ballast/worker) to the TypeScript sources instead of dist/.
 */
export const NODE_ARGS = ['--conditions=ballast-source'];

/** Starts `node <script>` from the project root with extra environment; output is collected. */
export function startNode(script: string, env: Record<string, string> = {}, base: NodeJS.ProcessEnv = process.env): Proc {
  const proc = spawn(process.execPath, [...NODE_ARGS, path.join(ROOT, script)], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => { out += d; });
  proc.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { live.delete(p); resolve(code); }));
  const p: Proc = { proc, output: () => out, exited };
  live.add(p);
  return p;
}

export type Run = { code: number | null; out: string; err: string; output: string; ms: number };

/**
 * Runs `node <file> <args>` from the project root until it exits (a CLI or a script, as a user runs
 * it). `without`: variables of this process's environment the child does not inherit (DATABASE_URL,
 * say); `env`: set for the child after that. `output` is stdout and stderr as they came; a process that
 * outlives timeoutMs is killed, so a hang fails the test on its exit code instead of stalling the file.
 */
export function runNode(file: string, args: string[], opts: { env?: Record<string, string>; without?: string[]; timeoutMs?: number } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of opts.without ?? []) delete env[v];
  Object.assign(env, opts.env);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [...NODE_ARGS, path.join(ROOT, file), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '', output = '';
    p.stdout.on('data', (d) => { out += d; output += d; });
    p.stderr.on('data', (d) => { err += d; output += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err, output, ms: performance.now() - t0 }); });
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after timeoutMs. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/**
 * Starts the example's API process (example/server.ts: ballast/postgraphile over app_public), connected to
 * the test database as the authenticator; it may exit at once (configuration tests).
 */
export function startServer(env: Record<string, string> = {}): Proc {
  // as scripts/start.ts does: no database login but the authenticator's in its environment (apiEnv)
  return startNode('example/server.ts', env, apiEnv(process.env, cfg.authUrl));
}

/**
 * Starts the example's worker process (example/worker.ts: ballast/worker) as npm start does: logged in as
 * ballast's worker's own role (ballast_worker_login), no other database login in its environment.
 */
export function startWorker(env: Record<string, string> = {}): Proc {
  return startNode('example/worker.ts', env, workerEnv(process.env, cfg.workerUrl));
}

/** Starts the API on a free port and waits until /health/ready answers 200. */
export async function startApi(env: Record<string, string> = {}): Promise<Proc & { url: string }> {
  const port = await freePort();
  // Rate limits off unless a test turns them on: suites share one database and one client address.
  // Through pgbouncer: the API's pool connects to it, with named statements off (as README says to).
  const viaBouncer: Record<string, string> = pgBouncerUrl ? { AUTH_DATABASE_URL: pgBouncerUrl, DB_PREPARED_STATEMENTS: 'off' } : {};
  const p = startServer({ PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_QUERY: 'off', RATE_LIMIT_MUTATION: 'off', ...viaBouncer, ...env });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the API to be ready', async () => {
    if (p.proc.exitCode !== null) throw new Error(`api exited ${p.proc.exitCode}: ${p.output()}`);
    const r = await fetch(`${url}/health/ready`);
    return r.status === 200 ? true : undefined;
  });
  return { ...p, url };
}

export async function stop(p: Proc): Promise<number | null> {
  if (p.proc.exitCode === null) p.proc.kill('SIGTERM');
  return p.exited;
}

export type Reply = { status: number; headers: http.IncomingHttpHeaders; body: string };

/** POST /graphql with exactly these headers (node:http, so odd header values go out as given). */
export function postGraphQL(url: string, payload: unknown, headers: Record<string, string> = {}, agent?: http.Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(payload);
    const req = http.request(`${url}/graphql`, {
      method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
