// Where the database is and who connects to it, derived once from the environment.
// Two modes: a local cluster this project manages (default), or an existing server named by
// DATABASE_URL (superuser, or a role with the rights listed in the README).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const ROLES = {
  owner: 'ballast_owner',
  authenticator: 'ballast_authenticator',
  anonymous: 'ballast_anonymous',
  member: 'ballast_member',
  admin: 'ballast_admin',
} as const;

export type DbConfig = {
  managed: boolean; // true when this project runs the cluster itself
  port: number;
  dataDir: string;
  dbName: string;
  rootUrl: string; // superuser, database = dbName
  ownerUrl: string; // runs migrations and the worker
  authUrl: string; // the API's login role (NOINHERIT, switches to the visitor roles)
  shadowOwnerUrl: string;
  ownerPassword: string;
  authenticatorPassword: string;
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

/** The database configuration; `test` picks the throwaway cluster that `npm test` uses. */
export function dbConfig(opts: { test?: boolean; dataDir?: string } = {}, env = process.env): DbConfig {
  const ownerPassword = env.BALLAST_OWNER_PASSWORD || 'ballast_owner_dev';
  const authenticatorPassword = env.BALLAST_AUTHENTICATOR_PASSWORD || 'ballast_authenticator_dev';
  const external = env.DATABASE_URL;
  if (external) {
    const dbName = databaseOf(external);
    if (!dbName) throw new Error(`DATABASE_URL must name a database, got "${external}"`);
    const u = new URL(external);
    return {
      managed: false,
      port: Number(u.port || 5432),
      dataDir: '',
      dbName,
      rootUrl: external,
      ownerUrl: withCredentials(external, ROLES.owner, ownerPassword),
      authUrl: env.AUTH_DATABASE_URL || withCredentials(external, ROLES.authenticator, authenticatorPassword),
      shadowOwnerUrl: withCredentials(external, ROLES.owner, ownerPassword, `${dbName}_shadow`),
      ownerPassword,
      authenticatorPassword,
    };
  }
  const port = opts.test ? intFromEnv('BALLAST_TEST_PG_PORT', 54339, env) : intFromEnv('BALLAST_PG_PORT', 54329, env);
  const dbName = opts.test ? 'ballast_test' : env.BALLAST_DB_NAME || 'ballast';
  const dataDir = opts.dataDir ?? path.resolve(ROOT, env.BALLAST_PG_DATA || '.ballast/pgdata');
  const base = `postgres://postgres@127.0.0.1:${port}/${dbName}`;
  return {
    managed: true,
    port,
    dataDir,
    dbName,
    rootUrl: base,
    ownerUrl: withCredentials(base, ROLES.owner, ownerPassword),
    authUrl: env.AUTH_DATABASE_URL || withCredentials(base, ROLES.authenticator, authenticatorPassword),
    shadowOwnerUrl: withCredentials(base, ROLES.owner, ownerPassword, `${dbName}_shadow`),
    ownerPassword,
    authenticatorPassword,
  };
}

/** The URL with its password hidden, for messages. */
export function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
