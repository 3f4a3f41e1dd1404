// The example app's roles and database, prepared with the superuser connection before its migrations.
// On a disposable database (the local cluster, a *_test database) this sets everything up with the
// development passwords. On a server ballast did not create (DATABASE_URL) it only creates what is
// missing, with the passwords it was given, and never alters a role, a database's owner or its grants.
import pg from 'pg';
import { ROLES, redact, withDatabase, type DbConfig } from './config.ts';
import { fail, log } from './output.ts';

const VISITORS = [ROLES.anonymous, ROLES.member, ROLES.admin];

export function ident(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}
function literal(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (e) {
    fail(`cannot connect to ${redact(url)}: ${(e as Error).message}`);
  }
  return client;
}

/** The SQL a superuser would run to create the missing roles (passwords elided). */
export function roleSql(missing: string[]): string[] {
  return [
    ...missing.map((r) => r === ROLES.owner ? `create role ${r} login password '...' nosuperuser nobypassrls`
      : r === ROLES.authenticator || r === ROLES.worker ? `create role ${r} login noinherit password '...' nosuperuser nobypassrls`
        : `create role ${r} nologin nobypassrls`),
    ...(missing.length ? [`grant ${VISITORS.join(', ')} to ${ROLES.authenticator}`] : []),
  ];
}

export async function bootstrap(cfg: DbConfig): Promise<void> {
  const admin = await connect(withDatabase(cfg.rootUrl, 'postgres'));
  try {
    const me = (await admin.query<{ rolsuper: boolean; rolcreaterole: boolean; rolname: string }>(
      'select rolsuper, rolcreaterole, rolname from pg_roles where rolname = current_user')).rows[0];
    const existing = new Set((await admin.query<{ rolname: string }>(
      'select rolname from pg_roles where rolname = any($1)', [Object.values(ROLES)])).rows.map((r) => r.rolname));
    const missing = Object.values(ROLES).filter((r) => !existing.has(r));
    if (missing.length > 0 && !me.rolsuper && !me.rolcreaterole) {
      fail(`roles ${missing.join(', ')} are missing and ${me.rolname} may not create roles. Ask a superuser to run:\n  ${roleSql(missing).join(';\n  ')};`);
    }
    const password = (r: string) => (r === ROLES.owner ? cfg.ownerPassword : r === ROLES.worker ? cfg.workerPassword : cfg.authenticatorPassword);
    const logins: string[] = [ROLES.owner, ROLES.authenticator, ...(cfg.workerPassword ? [ROLES.worker] : [])];
    for (const r of missing) {
      // the worker's role: NOINHERIT, member of nothing; its rights are the kit's grants (sql/worker.sql).
      // Without a password (WORKER_DATABASE_URL given instead) it is left to ballast migrate, created NOLOGIN.
      if (r === ROLES.worker && !cfg.workerPassword) continue;
      const attrs = r === ROLES.owner ? `login inherit password ${literal(password(r))}`
        : r === ROLES.authenticator || r === ROLES.worker ? `login noinherit password ${literal(password(r))}` : 'nologin';
      await admin.query(`create role ${ident(r)} ${attrs} nosuperuser nocreatedb nocreaterole nobypassrls`);
      log(`created role ${r}`);
    }
    if (cfg.managed && me.rolsuper) {
      // our own cluster: the development passwords and attributes, every time. Not on a *_test database
      // of another server: roles are server-wide there, and one that exists is not ours to re-password.
      for (const r of logins) {
        const attrs = r === ROLES.owner ? 'login inherit' : 'login noinherit';
        await admin.query(`alter role ${ident(r)} ${attrs} nosuperuser nocreatedb nocreaterole nobypassrls password ${literal(password(r))}`);
      }
    }
    for (const r of VISITORS) {
      if (missing.includes(r) || missing.includes(ROLES.authenticator) || cfg.managed) {
        await admin.query(`grant ${ident(r)} to ${ident(ROLES.authenticator)}`);
      }
    }
    const db = await admin.query('select 1 from pg_database where datname = $1', [cfg.dbName]);
    if (db.rowCount === 0) {
      if (!me.rolsuper) fail(`database ${cfg.dbName} does not exist and ${me.rolname} cannot create it for ${ROLES.owner}.`);
      await admin.query(`create database ${ident(cfg.dbName)} owner ${ident(ROLES.owner)}`);
      log(`created database ${cfg.dbName}`);
    } else if (cfg.disposable && me.rolsuper) {
      await admin.query(`alter database ${ident(cfg.dbName)} owner to ${ident(ROLES.owner)}`);
    } else {
      const may = await admin.query<{ ok: boolean }>(`select has_database_privilege($1, $2, 'create') as ok`, [ROLES.owner, cfg.dbName]);
      if (!may.rows[0].ok) {
        fail(`${ROLES.owner} may not create schemas in database ${cfg.dbName}, which ballast did not create, so the example app cannot be migrated there.\n` +
          `  A superuser can allow it: grant create on database ${ident(cfg.dbName)} to ${ROLES.owner};`);
      }
    }
  } finally {
    await admin.end();
  }
}
