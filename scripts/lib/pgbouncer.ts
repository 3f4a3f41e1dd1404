// PgBouncer in transaction mode in front of one database, for npm test's pass of the API's core tests
// through a transaction pooler (scripts/test.ts). Each transaction of a client may run on a different server
// connection that other clients share, so whatever an API leaves on a session (startup parameters,
// prepared statements, settings outside a transaction) breaks or leaks here instead of in production.
// Loopback only, a free port, SCRAM against an auth_file of the given users (their passwords also log it in
// to the server when the server asks for one). It refuses to run as root: as root it runs as the postgres OS
// user, like the cluster (scripts/lib/cluster.ts).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { $ } from 'zx';
import { PGBOUNCER_BIN } from './system.ts';

export type PgBouncer = {
  port: number;
  /** The same URL (user, password, database) with pgbouncer's host and port. */
  via: (url: string) => string;
  stop: () => Promise<void>;
};

export type PgBouncerOptions = {
  /** The database pgbouncer serves, under its own name: host, port and database are taken from it. */
  serverUrl: string;
  /** Who may log in (the auth_file); the first one is used to check that pgbouncer is up. */
  users: { name: string; password: string }[];
  /** Server connections per user (default_pool_size). */
  poolSize?: number;
};

const isRoot = () => process.getuid?.() === 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no free port'))));
    });
  });
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** A value in pgbouncer's [databases] connection string: single-quoted, quotes and backslashes escaped. */
const connValue = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** A field of the auth_file: double-quoted, a double quote written twice. */
const authField = (v: string) => `"${v.replace(/"/g, '""')}"`;

export async function startPgBouncer(opts: PgBouncerOptions): Promise<PgBouncer> {
  if (!fs.existsSync(PGBOUNCER_BIN)) throw new Error(`${PGBOUNCER_BIN} is missing: apt-get install pgbouncer`);
  const server = new URL(opts.serverUrl);
  const dbName = decodeURIComponent(server.pathname.replace(/^\//, ''));
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-pgbouncer-'));
  const ini = path.join(dir, 'pgbouncer.ini');
  const authFile = path.join(dir, 'userlist.txt');
  const logFile = path.join(dir, 'pgbouncer.log');
  const pidFile = path.join(dir, 'pgbouncer.pid');
  fs.writeFileSync(authFile, opts.users.map((u) => `${authField(u.name)} ${authField(u.password)}\n`).join(''), { mode: 0o600 });
  fs.writeFileSync(ini, `[databases]
${dbName} = host=${connValue(server.hostname || '127.0.0.1')} port=${server.port || '5432'} dbname=${connValue(dbName)}

[pgbouncer]
pool_mode = transaction
listen_addr = 127.0.0.1
listen_port = ${port}
; no unix socket: loopback TCP only
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${authFile}
; unset on purpose: a client that sends a startup parameter pgbouncer does not know (statement_timeout, ...) is refused
ignore_startup_parameters =
max_client_conn = 1000
default_pool_size = ${opts.poolSize ?? 50}
; TLS to the server when it offers it (a BALLAST_TEST_DATABASE_URL server may require it), plain otherwise
server_tls_sslmode = prefer
logfile = ${logFile}
pidfile = ${pidFile}
log_connections = 0
log_disconnections = 0
`);
  if (isRoot()) {
    const uid = Number((await $({ quiet: true })`id -u postgres`).stdout.trim());
    const gid = Number((await $({ quiet: true })`id -g postgres`).stdout.trim());
    for (const f of [dir, ini, authFile]) fs.chownSync(f, uid, gid);
  }
  const cmd = [PGBOUNCER_BIN, '-d', ini]; // -d: it forks into the background and writes pidFile
  const started = await $({ quiet: true, nothrow: true })`${isRoot() ? ['runuser', '-u', 'postgres', '--', ...cmd] : cmd}`;
  const tail = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-8).join('\n') : '(no log)');
  const pid = (): number | null => {
    const n = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : NaN;
    return Number.isInteger(n) && n > 0 ? n : null;
  };

  const bouncer: PgBouncer = {
    port,
    via(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async stop() {
      const p = pid();
      if (p !== null && alive(p)) {
        process.kill(p, 'SIGTERM'); // immediate shutdown
        const deadline = Date.now() + 5000;
        while (alive(p) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        if (alive(p)) process.kill(p, 'SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  // Up when a client gets an answer through it.
  const first = opts.users[0];
  const probeUrl = new URL(bouncer.via(opts.serverUrl));
  probeUrl.username = encodeURIComponent(first.name);
  probeUrl.password = encodeURIComponent(first.password);
  const deadline = Date.now() + 10_000;
  let last: unknown = null;
  while (Date.now() < deadline) {
    if (started.exitCode !== 0) break;
    const c = new pg.Client({ connectionString: probeUrl.toString(), connectionTimeoutMillis: 2000 });
    try {
      await c.connect();
      await c.query('select 1');
      await c.end();
      return bouncer;
    } catch (e) {
      last = e;
      await c.end().catch(() => undefined);
      const p = pid();
      if (p !== null && !alive(p)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const message = `pgbouncer did not start (exit ${started.exitCode}${last ? `; last attempt: ${(last as Error).message}` : ''}):\n${started.stderr.trim()}\n${tail()}`;
  await bouncer.stop().catch(() => undefined);
  throw new Error(message);
}
