// Where the database is and who connects to it, derived once from the environment.
// Three cases:
//   - the local cluster this project manages (default): throwaway, development passwords, seeded;
//   - `npm test` / `npm run bench`: their own throwaway cluster, or BALLAST_TEST_DATABASE_URL when its
//     database name ends in _test. They never read DATABASE_URL: on many platforms that is production;
//   - `npm start` / `npm run migrate` with DATABASE_URL: a server ballast did not create. Nothing there
//     is erased, re-owned or re-passworded; passwords must be given (no published defaults).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KIT_ROLES } from '../../src/constants.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The example app's owner (runs its migrations) and the kit's roles it uses (the worker logs in as ROLES.worker). */
export const ROLES = { owner: 'ballast_owner', ...KIT_ROLES } as const;

/** Development passwords: used only on the local cluster and on a test database (name ending in _test). */
const DEV_PASSWORDS = { owner: 'ballast_owner_dev', authenticator: 'ballast_authenticator_dev', worker: 'ballast_worker_dev' };

export type DbConfig = {
  managed: boolean; // true when this project runs the cluster itself
  disposable: boolean; // ours to erase: the managed cluster, or a test database named *_test
  port: number;
  dataDir: string;
  dbName: string;
  rootUrl: string; // superuser, database = dbName
  ownerUrl: string; // runs migrations
  authUrl: string; // the API's login role (NOINHERIT, switches to the visitor roles)
  workerUrl: string; // ballast's worker's login role (ballast_worker_login: its tasks' functions and its jobs, nothing else)
  shadowOwnerUrl: string;
  ownerPassword: string;
  authenticatorPassword: string;
  workerPassword: string;
};

function withCredentials(url: string, user: string, password: string, database?: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  if (database) u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

export function intFromEnv(name: string, fallback: number, env = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) {
    throw new Error(`${name} must be a whole number from 1 to 65535, got "${raw}"`);
  }
  return n;
}

/**
 * graphile-migrate's shadow database (it erases it): a test database's shadow is named for tests too
 * (shop_test → shop_shadow_test), so every database the test scripts erase ends in _test.
 */
export function shadowName(dbName: string): string {
  return TEST_DB_NAME.test(dbName) ? `${dbName.replace(TEST_DB_NAME, '')}_shadow_test` : `${dbName}_shadow`;
}

export type Purpose = 'app' | 'test' | 'bench';

/** A test database must be named for tests: its name ends in _test. */
export const TEST_DB_NAME = /_test$/;

/**
 * The database configuration. `test` (npm test, and every process it starts: BALLAST_TEST=1) and
 * `bench` use their throwaway cluster or BALLAST_TEST_DATABASE_URL, never DATABASE_URL.
 */
export function dbConfig(opts: { test?: boolean; bench?: boolean; dataDir?: string } = {}, env = process.env): DbConfig {
  const purpose: Purpose = opts.test || env.BALLAST_TEST === '1' ? 'test' : opts.bench ? 'bench' : 'app';
  const external = purpose === 'app' ? env.DATABASE_URL : env.BALLAST_TEST_DATABASE_URL;
  if (external) {
    const dbName = databaseOf(external);
    const variable = purpose === 'app' ? 'DATABASE_URL' : 'BALLAST_TEST_DATABASE_URL';
    if (!dbName) throw new Error(`${variable} must name a database, got "${redact(external)}"`);
    const disposable = purpose !== 'app';
    if (disposable && !TEST_DB_NAME.test(dbName)) {
      throw new Error(`BALLAST_TEST_DATABASE_URL names database "${dbName}": tests and benchmarks erase their database, so its name must end in _test`);
    }
    const password = (name: string, fallback: string) => {
      const v = env[name];
      if (v) return v;
      if (disposable) return fallback;
      const role = { BALLAST_OWNER_PASSWORD: ROLES.owner, BALLAST_AUTHENTICATOR_PASSWORD: ROLES.authenticator, BALLAST_WORKER_PASSWORD: ROLES.worker }[name];
      throw new Error(`${name} is not set: against a server ballast did not create (DATABASE_URL), give the password for ` +
        `${role} yourself; development defaults exist only on the local cluster`);
    };
    const ownerPassword = password('BALLAST_OWNER_PASSWORD', DEV_PASSWORDS.owner);
    const authenticatorPassword = env.AUTH_DATABASE_URL ? '' : password('BALLAST_AUTHENTICATOR_PASSWORD', DEV_PASSWORDS.authenticator);
    // WORKER_DATABASE_URL only for the app: a test or benchmark never reads a URL that may be production's
    const workerGiven = purpose === 'app' ? env.WORKER_DATABASE_URL : undefined;
    const workerPassword = workerGiven ? '' : password('BALLAST_WORKER_PASSWORD', DEV_PASSWORDS.worker);
    const u = new URL(external);
    return {
      managed: false,
      disposable,
      port: Number(u.port || 5432),
      dataDir: '',
      dbName,
      rootUrl: external,
      ownerUrl: withCredentials(external, ROLES.owner, ownerPassword),
      authUrl: env.AUTH_DATABASE_URL || withCredentials(external, ROLES.authenticator, authenticatorPassword),
      workerUrl: workerGiven || withCredentials(external, ROLES.worker, workerPassword),
      shadowOwnerUrl: withCredentials(external, ROLES.owner, ownerPassword, shadowName(dbName)),
      ownerPassword,
      authenticatorPassword,
      workerPassword,
    };
  }
  const ownerPassword = env.BALLAST_OWNER_PASSWORD || DEV_PASSWORDS.owner;
  const authenticatorPassword = env.BALLAST_AUTHENTICATOR_PASSWORD || DEV_PASSWORDS.authenticator;
  const workerPassword = env.BALLAST_WORKER_PASSWORD || DEV_PASSWORDS.worker;
  const test = purpose === 'test';
  const port = test ? intFromEnv('BALLAST_TEST_PG_PORT', 54339, env) : intFromEnv('BALLAST_PG_PORT', 54329, env);
  const dbName = test ? 'ballast_test' : env.BALLAST_DB_NAME || 'ballast';
  const dataDir = opts.dataDir ?? (test && env.BALLAST_TEST_PG_DATA ? env.BALLAST_TEST_PG_DATA : path.resolve(ROOT, test ? '.ballast/test-pgdata' : env.BALLAST_PG_DATA || '.ballast/pgdata'));
  const base = `postgres://postgres@127.0.0.1:${port}/${dbName}`;
  return {
    managed: true,
    disposable: true,
    port,
    dataDir,
    dbName,
    rootUrl: base,
    ownerUrl: withCredentials(base, ROLES.owner, ownerPassword),
    authUrl: env.AUTH_DATABASE_URL || withCredentials(base, ROLES.authenticator, authenticatorPassword),
    workerUrl: withCredentials(base, ROLES.worker, workerPassword),
    shadowOwnerUrl: withCredentials(base, ROLES.owner, ownerPassword, shadowName(dbName)),
    ownerPassword,
    authenticatorPassword,
    workerPassword,
  };
}

/**
 * Variables that name or unlock a database login other than the authenticator's. The API process never
 * gets them: it connects only as the authenticator (AUTH_DATABASE_URL), so a compromised API cannot fall
 * back to the owner or a superuser (api/env.ts would otherwise build its URL from DATABASE_URL).
 */
export const NOT_FOR_API = ['DATABASE_URL', 'WORKER_DATABASE_URL', 'BALLAST_TEST_DATABASE_URL', 'BALLAST_OWNER_PASSWORD',
  'BALLAST_WORKER_PASSWORD', 'PGPASSWORD', 'PGPASSFILE', 'PGUSER', 'PGSERVICE', 'PGSERVICEFILE'] as const;

/**
 * Variables that name or unlock a database login other than the worker's: ballast's worker process never
 * gets them, only WORKER_DATABASE_URL as ballast_worker_login (a worker that talks to external HTTP and
 * Redis holds no owner's or superuser's login).
 */
export const NOT_FOR_WORKER = ['DATABASE_URL', 'AUTH_DATABASE_URL', 'BALLAST_TEST_DATABASE_URL', 'BALLAST_OWNER_PASSWORD',
  'BALLAST_AUTHENTICATOR_PASSWORD', 'PGPASSWORD', 'PGPASSFILE', 'PGUSER', 'PGSERVICE', 'PGSERVICEFILE'] as const;

/** The worker process's environment: `base` without NOT_FOR_WORKER, with WORKER_DATABASE_URL = workerUrl. */
export function workerEnv(base: NodeJS.ProcessEnv | Record<string, string | undefined>, workerUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !(NOT_FOR_WORKER as readonly string[]).includes(k)) env[k] = v;
  }
  env.WORKER_DATABASE_URL = workerUrl;
  return env;
}

/** The API process's environment: `base` without NOT_FOR_API, with AUTH_DATABASE_URL = authUrl. */
export function apiEnv(base: NodeJS.ProcessEnv | Record<string, string | undefined>, authUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !(NOT_FOR_API as readonly string[]).includes(k)) env[k] = v;
  }
  env.AUTH_DATABASE_URL = authUrl;
  return env;
}

/** The URL with its password hidden, for messages. */
export function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
