// The local PostgreSQL 15 cluster: initdb into a git-ignored folder, pg_cron preloaded, loopback only.
// As root, initdb/pg_ctl run as the `postgres` OS user (they refuse to run as root).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { $ } from 'zx';
import { PG_BIN, PG_MAJOR } from './system.ts';
import { fail, log } from './output.ts';
import type { DbConfig } from './config.ts';

const isRoot = () => process.getuid?.() === 0;

function asPg(cmd: string[]): string[] {
  return isRoot() ? ['runuser', '-u', 'postgres', '--', ...cmd] : cmd;
}

/** pg_ctl start in a session of its own, so a terminal's Ctrl-C does not reach the postmaster. */
function detached(cmd: string[]): string[] {
  return ['setsid', '--wait', ...cmd];
}

async function run(cmd: string[], opts: { nothrow?: boolean } = {}) {
  return $({ quiet: true, nothrow: opts.nothrow ?? false })`${asPg(cmd)}`;
}

/**
 * The folder that really holds the data. When the postgres OS user cannot reach the configured folder
 * (a clone inside a private temp folder, say), the data lives under /var/tmp and the configured path
 * becomes a symlink to it.
 */
async function resolveDataDir(cfg: DbConfig): Promise<string> {
  if (fs.existsSync(cfg.dataDir)) return fs.realpathSync(cfg.dataDir);
  fs.mkdirSync(path.dirname(cfg.dataDir), { recursive: true });
  if (!isRoot()) return cfg.dataDir;
  const probe = await $({ quiet: true, nothrow: true })`runuser -u postgres -- test -w ${path.dirname(cfg.dataDir)}`;
  if (probe.exitCode === 0) return cfg.dataDir;
  await $({ quiet: true, nothrow: true })`chown postgres ${path.dirname(cfg.dataDir)}`;
  const reach = await $({ quiet: true, nothrow: true })`runuser -u postgres -- test -w ${path.dirname(cfg.dataDir)}`;
  if (reach.exitCode === 0) return cfg.dataDir;
  const hash = crypto.createHash('sha1').update(cfg.dataDir).digest('hex').slice(0, 10);
  const real = `/var/tmp/ballast-${hash}/${path.basename(cfg.dataDir)}`;
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.chownSync(path.dirname(real), ...(await pgIds()));
  fs.symlinkSync(real, cfg.dataDir);
  log(`the postgres OS user cannot reach ${path.dirname(cfg.dataDir)}; data lives in ${real} (linked from ${cfg.dataDir})`);
  return real;
}

async function pgIds(): Promise<[number, number]> {
  const uid = Number((await $({ quiet: true })`id -u postgres`).stdout.trim());
  const gid = Number((await $({ quiet: true })`id -g postgres`).stdout.trim());
  return [uid, gid];
}

function socketDir(dataDir: string): string {
  return path.join(dataDir, 'run');
}

export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
  });
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Running pid of the cluster in dataDir, or null; removes a stale postmaster.pid with a note. */
function runningPid(dataDir: string): number | null {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return null;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) return pid;
  log(`removing stale ${pidFile} (process ${pid} is not running; the cluster was not shut down cleanly)`);
  fs.rmSync(pidFile);
  return null;
}

async function initCluster(cfg: DbConfig, dataDir: string): Promise<void> {
  log(`initdb → ${dataDir}`);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (isRoot()) fs.chownSync(dataDir, ...(await pgIds()));
  const r = await run([`${PG_BIN}/initdb`, '-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'], { nothrow: true });
  if (r.exitCode !== 0) fail(`initdb failed in ${dataDir}:\n${r.stderr}`);
  fs.mkdirSync(socketDir(dataDir), { recursive: true });
  if (isRoot()) fs.chownSync(socketDir(dataDir), ...(await pgIds()));
  // Loopback only; trust is acceptable for a throwaway development cluster that nobody else can reach.
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `
# --- ballast ---
listen_addresses = '127.0.0.1'
port = ${cfg.port}
unix_socket_directories = '${socketDir(dataDir)}'
shared_preload_libraries = 'pg_cron'
cron.database_name = '${cfg.dbName}'
cron.use_background_workers = on
max_worker_processes = 32
max_connections = 200
shared_buffers = 256MB
fsync = ${process.env.BALLAST_PG_FSYNC ?? 'on'}
log_lock_waits = on
log_min_duration_statement = -1
`);
  fs.writeFileSync(path.join(dataDir, 'pg_hba.conf'), [
    'local all all trust',
    'host all all 127.0.0.1/32 trust',
    '',
  ].join('\n'));
}

/** Starts the cluster (initdb first when the folder is new). Clear messages instead of hangs. */
export async function up(cfg: DbConfig): Promise<void> {
  const dataDir = await resolveDataDir(cfg);
  const versionFile = path.join(dataDir, 'PG_VERSION');
  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0 && !fs.existsSync(versionFile)) {
    fail(`${dataDir} exists but is not a PostgreSQL data folder. Move it away, or set BALLAST_PG_DATA to another folder.`);
  }
  if (!fs.existsSync(versionFile)) await initCluster(cfg, dataDir);
  const version = fs.readFileSync(versionFile, 'utf8').trim();
  if (version !== String(PG_MAJOR)) {
    fail(`${dataDir} was made by PostgreSQL ${version}; ballast runs PostgreSQL ${PG_MAJOR}. ` +
      `Remove it with \`npm run db -- reset\` (its data is lost) or point BALLAST_PG_DATA elsewhere.`);
  }
  if (runningPid(dataDir) !== null) {
    if (await ready(cfg)) return;
  } else if (await portInUse(cfg.port)) {
    fail(`port ${cfg.port} is taken by another process, so the ballast cluster cannot start. ` +
      `Stop that process or choose another port, e.g. BALLAST_PG_PORT=${cfg.port + 1} npm start`);
  }
  const logFile = path.join(dataDir, 'server.log');
  // Port and cron database from the current configuration, whatever initdb wrote back then.
  const opts = `-p ${cfg.port} -c cron.database_name=${cfg.dbName}`;
  const r = await $({ quiet: true, nothrow: true })`${detached(asPg([`${PG_BIN}/pg_ctl`, '-D', dataDir, '-l', logFile, '-o', opts, '-w', '-t', '30', 'start']))}`;
  if (r.exitCode !== 0) {
    const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-8).join('\n') : '';
    fail(`PostgreSQL did not start (pg_ctl exit ${r.exitCode}). Last lines of ${logFile}:\n${tail}`);
  }
  log(`PostgreSQL ${PG_MAJOR} up on 127.0.0.1:${cfg.port} (data: ${cfg.dataDir})`);
}

export async function ready(cfg: DbConfig): Promise<boolean> {
  const r = await $({ quiet: true, nothrow: true })`${PG_BIN}/pg_isready -h 127.0.0.1 -p ${cfg.port} -t 5`;
  return r.exitCode === 0;
}

export async function down(cfg: DbConfig): Promise<void> {
  if (!fs.existsSync(cfg.dataDir)) return;
  const dataDir = fs.realpathSync(cfg.dataDir);
  if (runningPid(dataDir) === null) return;
  const r = await run([`${PG_BIN}/pg_ctl`, '-D', dataDir, '-m', 'fast', '-w', '-t', '30', 'stop'], { nothrow: true });
  if (r.exitCode !== 0) fail(`pg_ctl stop failed: ${r.stderr.trim()}`);
  log('PostgreSQL stopped');
}

/** Stops the cluster and deletes its data (and the /var/tmp folder behind a symlink). */
export async function destroy(cfg: DbConfig): Promise<void> {
  await down(cfg);
  if (!fs.existsSync(cfg.dataDir) && !fs.lstatSync(cfg.dataDir, { throwIfNoEntry: false })) return;
  const real = fs.existsSync(cfg.dataDir) ? fs.realpathSync(cfg.dataDir) : cfg.dataDir;
  fs.rmSync(real, { recursive: true, force: true });
  fs.rmSync(cfg.dataDir, { recursive: true, force: true });
  if (real !== cfg.dataDir && path.dirname(real).startsWith('/var/tmp/ballast-')) fs.rmSync(path.dirname(real), { recursive: true, force: true });
}

export async function status(cfg: DbConfig): Promise<{ initialised: boolean; running: boolean }> {
  const initialised = fs.existsSync(path.join(cfg.dataDir, 'PG_VERSION'));
  return { initialised, running: initialised && (await ready(cfg)) };
}
