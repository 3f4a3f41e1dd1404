// migrate(): install or upgrade the kit in a database, in one transaction, serialised by an advisory
// lock. It refuses a database whose kit is newer than this code. It touches only schema ballast, the
// roles it creates when they are missing, grants on its own objects, its own pg_cron jobs and, after
// the commit, graphile-worker's schema for ballast's worker (ballast_worker) and what the worker's login
// role may do there (WORKER_SCHEMA_ACCESS_SQL).
// A deploy must not hurt the app it serves: the transaction waits at most lockTimeout for any lock (a
// long transaction on a table whose policy, trigger or view changes would otherwise queue every reader
// and writer of that table behind the installer), and is retried as a whole, with backoff, when a lock
// was not available (55P03). Unchanged definitions take no such lock at all (sql/kit.sql, ensure_*).
import pg from 'pg';
import { runMigrations, Logger } from 'graphile-worker';
import { KIT_SCHEMA, WORKER_SCHEMA } from './constants.ts';
import { compareVersions, definitionsDigest, kitDefinitions, kitMigrations, kitVersion } from './kit_files.ts';
import {
  BOOKKEEPING_SQL, DEFAULT_LOCK_RETRIES, DEFAULT_LOCK_TIMEOUT_MS, LOCK_NOT_AVAILABLE, LOCK_SQL, ROLES_SQL, WORKER_SCHEMA_ACCESS_SQL, parseLockTimeout, recordInstallSql, recordMigrationSql,
} from './install_sql.ts';
import { inInstallTransaction, isLockNotAvailable, type LockRetry, type Notice } from './install_transaction.ts';
import { BallastError } from './errors.ts';

export type MigrateOptions = {
  /** A connection string for the role that will own the kit's objects (your migration role). */
  databaseUrl: string;
  /** Password for ballast_authenticator if the installer creates it; without one it is created NOLOGIN. */
  authenticatorPassword?: string;
  /** Password for ballast_worker_login (the worker's login role) if the installer creates it; without one it is created NOLOGIN. */
  workerPassword?: string;
  /** Re-apply sql/ even when its digest is unchanged. */
  force?: boolean;
  /** Install graphile-worker's schema for ballast's worker (default WORKER_SCHEMA); false to skip. */
  workerSchema?: string | false;
  /**
   * How long any statement waits for a lock before the attempt is rolled back and retried: milliseconds,
   * or a duration such as '2s', '500ms' (default 2 s; the CLI reads --lock-timeout or BALLAST_LOCK_TIMEOUT).
   * 0 waits without limit.
   */
  lockTimeout?: number | string;
  /** How many times the whole transaction is tried again after a lock timeout, with backoff (default 8). */
  lockRetries?: number;
  /** Milliseconds to wait before attempt n + 1 (default: 500 ms doubling to 15 s, with jitter). */
  lockBackoffMs?: (n: number) => number;
  /** Progress lines (default: none), a retry after a lock timeout among them. */
  onProgress?: (line: string) => void;
};

export type MigrateResult = {
  version: string;
  previousVersion: string | null;
  migrationsApplied: string[];
  definitionsApplied: boolean;
  rolesCreated: string[];
  workerSchema: string | null;
  changed: boolean;
  /** pg_cron is installed here and usable by the installing role: the kit's jobs are scheduled. */
  cron: boolean;
  /** Transactions run: 1, or more when a lock was not available within lockTimeout and it was retried. */
  attempts: number;
};

type State = { schema: boolean; applied: Map<number, string>; version: string | null; digest: string | null };

async function readState(client: pg.Client): Promise<State> {
  const s = await client.query<{ schema: boolean; migrations: boolean; installs: boolean }>(
    `select to_regnamespace($1) is not null as schema, to_regclass($1 || '.migrations') is not null as migrations,
            to_regclass($1 || '.installs') is not null as installs`, [KIT_SCHEMA]);
  const { schema, migrations, installs } = s.rows[0];
  const applied = new Map<number, string>();
  let version: string | null = null, digest: string | null = null;
  if (migrations) {
    for (const r of (await client.query<{ id: number; name: string }>(`select id, name from ${KIT_SCHEMA}.migrations order by id`)).rows) applied.set(r.id, r.name);
  }
  if (installs) {
    const last = await client.query<{ version: string; definitions_sha1: string }>(
      `select version, definitions_sha1 from ${KIT_SCHEMA}.installs order by id desc limit 1`);
    version = last.rows[0]?.version ?? null;
    digest = last.rows[0]?.definitions_sha1 ?? null;
  }
  return { schema, applied, version, digest };
}

/** Throws BallastError when the database holds a kit newer than this code (or one this code never made). */
export function refuseNewer(state: State, known: { id: number; name: string }[], version: string): void {
  const knownIds = new Map(known.map((m) => [m.id, m.name]));
  const unknown = [...state.applied].filter(([id]) => !knownIds.has(id));
  const newer = state.version !== null && compareVersions(state.version, version) > 0;
  if (unknown.length || newer) {
    throw new BallastError('KIT_NEWER',
      `this database has ballast ${state.version ?? '(unknown version)'}${unknown.length ? ` with migration ${unknown.map(([, n]) => n).join(', ')}` : ''}, ` +
      `newer than this code (ballast ${version}, migrations up to ${known.at(-1)?.name ?? 'none'}). ` +
      `Nothing was changed. Run the installer of ballast ${state.version ?? 'that version'} or newer.`);
  }
  for (const [id, name] of state.applied) {
    if (knownIds.get(id) !== name) {
      throw new BallastError('KIT_MISMATCH', `ballast.migrations has migration ${id} as ${name}, but this code ships ${knownIds.get(id)}: the migration chain differs. Nothing was changed.`);
    }
  }
}

export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  const say = opts.onProgress ?? (() => {});
  const version = kitVersion();
  const migrations = kitMigrations();
  const defs = kitDefinitions();
  const digest = definitionsDigest(defs, version);
  const lockTimeoutMs = parseLockTimeoutOption(opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT_MS);
  const lockRetries = opts.lockRetries ?? DEFAULT_LOCK_RETRIES;
  if (!Number.isInteger(lockRetries) || lockRetries < 0 || lockRetries > 1000) {
    throw new BallastError('USAGE', `lockRetries must be a whole number from 0 to 1000, got ${lockRetries}`);
  }
  const fresh = (): MigrateResult => ({ version, previousVersion: null, migrationsApplied: [], definitionsApplied: false, rolesCreated: [], workerSchema: null, changed: false, cron: false, attempts: 1 });
  let result = fresh();
  // NOTICEs (a role made without LOGIN, a job not scheduled) are worth passing on
  const notice = (n: Notice) => {
    if (n.severity === 'WARNING' || n.message?.startsWith('ballast: ')) say((n.message ?? '').replace(/^ballast: /, ''));
  };
  const onRetry = (r: LockRetry) => say(`lock not available within ${lockTimeoutMs} ms: ${lockWaitDescription(r.error)}; ` +
    `attempt ${r.attempt} of ${r.attempts} rolled back (nothing changed), trying again in ${(r.delayMs / 1000).toFixed(1)} s`);
  try {
    await inInstallTransaction(opts.databaseUrl, 'ballast migrate', (client, attempt) => install(client, attempt), notice,
      { lockTimeoutMs, retries: lockRetries, onRetry, backoffMs: opts.lockBackoffMs });
  } catch (e) {
    if (!isLockNotAvailable(e)) throw e;
    throw new BallastError('SQL_FAILED',
      `gave up after ${lockRetries + 1} attempt${lockRetries ? 's' : ''}: each waited more than ${lockTimeoutMs} ms for a lock (${lockWaitDescription(e as Error)}). ` +
      'Nothing was changed. A long transaction holds a lock on a table this upgrade changes (look in pg_stat_activity and pg_locks): ' +
      'end it, or run migrate again later, or with a larger --lock-timeout or --lock-retries.', LOCK_NOT_AVAILABLE);
  }
  if (opts.workerSchema !== false) {
    result.workerSchema = opts.workerSchema ?? WORKER_SCHEMA;
    await runMigrations({ connectionString: opts.databaseUrl, schema: result.workerSchema, logger: silentLogger });
    // after graphile-worker's migrations, which may have added tables: the worker's login role's rights
    // there, under the installers' lock (two installers granting on one table at once: "tuple concurrently updated")
    const c = new pg.Client({ connectionString: opts.databaseUrl });
    await c.connect();
    try {
      await c.query(LOCK_SQL);
      await c.query(`begin; ${WORKER_SCHEMA_ACCESS_SQL}; commit;`);
    } finally {
      await c.end();  // the session's advisory lock ends with it
    }
  }
  return result;

  async function install(client: pg.Client, attempt: number): Promise<void> {
    result = fresh();  // a retried attempt starts over: the rolled-back one changed nothing
    result.attempts = attempt;
    const state = await readState(client);
    result.previousVersion = state.version;
    refuseNewer(state, migrations, version);
    if (!state.schema || !state.applied.size) await client.query(BOOKKEEPING_SQL);
    for (const m of migrations.filter((x) => !state.applied.has(x.id))) {
      say(`migration ${m.name}`);
      await client.query(recordMigrationSql(m.id, m.name, version));
      await runFile(client, `migrations/${m.name}.sql`, m.body);
      result.migrationsApplied.push(m.name);
    }
    const before = new Set((await client.query<{ role_name: string }>(`select role_name from ${KIT_SCHEMA}.created_roles`)).rows.map((r) => r.role_name));
    await client.query(`select set_config('ballast.install_authenticator_password', $1, true), set_config('ballast.install_worker_password', $2, true)`,
      [opts.authenticatorPassword ?? '', opts.workerPassword ?? '']);
    await client.query(ROLES_SQL);
    await client.query(`select set_config('ballast.install_authenticator_password', '', true), set_config('ballast.install_worker_password', '', true)`);
    result.rolesCreated = (await client.query<{ role_name: string }>(`select role_name from ${KIT_SCHEMA}.created_roles order by 1`)).rows
      .map((r) => r.role_name).filter((r) => !before.has(r));
    // All of sql/ or none, not the files whose own digest changed: the files depend on each other
    // (privileges.sql revokes PUBLIC's EXECUTE from functions any file creates, cleanup.sql's built-ins
    // need the other capabilities' tables, a view in one file reads functions of another), so applying a
    // subset could leave an upgrade that differs from a fresh install. Re-applying an unchanged file
    // costs milliseconds and takes no lock a reader or writer would wait for (sql/kit.sql, ensure_*).
    if (opts.force || state.digest !== digest || result.migrationsApplied.length > 0) {
      say(`definitions (${defs.length} files of sql/)`);
      for (const d of defs) await runFile(client, d.name, d.body);
      result.definitionsApplied = true;
    }
    result.changed = result.migrationsApplied.length > 0 || result.definitionsApplied || result.rolesCreated.length > 0 || state.version !== version;
    if (result.changed) await client.query(recordInstallSql(version, digest));
    result.cron = (await client.query<{ ok: boolean }>(
      `select to_regnamespace('cron') is not null and has_schema_privilege('cron', 'usage') as ok`)).rows[0].ok;
  }
}

function parseLockTimeoutOption(value: number | string): number {
  try {
    return parseLockTimeout(value);
  } catch (e) {
    throw new BallastError('USAGE', (e as Error).message);
  }
}

/** Where a lock timeout struck, in one line: the file and line, and the statement that waited. */
function lockWaitDescription(e: Error): string {
  const first = e.message.split('\n')[0].replace(/\. Nothing was changed\.$/, '');
  const statement = /SQL statement "([^"]+)"/.exec(e.message)?.[1] ?? (e as { where?: string }).where?.match(/SQL statement "([^"]+)"/)?.[1];
  return statement ? `${first}, waiting to run: ${statement.replace(/\s+/g, ' ').slice(0, 200)}` : first;
}

const silentLogger = new Logger(() => () => {});

/** Runs one file; an error names the file and the place in it. */
async function runFile(client: pg.Client, name: string, body: string): Promise<void> {
  try {
    await client.query(body);
  } catch (e) {
    const err = e as pg.DatabaseError;
    let where = '';
    if (err.position) {
      const line = body.slice(0, Number(err.position)).split('\n').length;
      where = ` (line ${line})`;
    }
    throw new BallastError('SQL_FAILED', `${name}${where}: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}${err.where ? `\n  ${err.where}` : ''}. Nothing was changed.`, err.code);
  }
}
