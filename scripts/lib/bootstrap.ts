// Roles and the database, created with the superuser connection before any migration runs.
// Idempotent: safe on every `npm start`. Roles follow graphile/starter: an owner that runs migrations,
// an authenticator (LOGIN, NOINHERIT) the API connects as, and NOLOGIN visitor roles it switches to.
import pg from 'pg';
import { ROLES, redact, withDatabase, type DbConfig } from './config.ts';
import { fail, log } from './output.ts';

const VISITORS = [ROLES.anonymous, ROLES.member, ROLES.admin];

function ident(s: string): string {
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

/** The SQL a superuser would run to create the roles; printed when we lack the rights to run it. */
export function roleSql(cfg: DbConfig): string[] {
  return [
    `create role ${ROLES.owner} login password ${literal(cfg.ownerPassword)} nosuperuser nobypassrls`,
    `create role ${ROLES.authenticator} login noinherit password ${literal(cfg.authenticatorPassword)} nosuperuser nobypassrls`,
    ...VISITORS.map((r) => `create role ${r} nologin nobypassrls`),
    `grant ${VISITORS.join(', ')} to ${ROLES.authenticator}`,
  ];
}

export async function bootstrap(cfg: DbConfig): Promise<void> {
  const admin = await connect(withDatabase(cfg.rootUrl, 'postgres'));
  try {
    const me = await admin.query<{ rolsuper: boolean; rolname: string }>(
      'select rolsuper, rolname from pg_roles where rolname = current_user');
    const superuser = me.rows[0]?.rolsuper === true;
    const existing = new Set((await admin.query<{ rolname: string }>(
      'select rolname from pg_roles where rolname = any($1)', [Object.values(ROLES)])).rows.map((r) => r.rolname));
    const missing = Object.values(ROLES).filter((r) => !existing.has(r));
    if (missing.length > 0 && !superuser) {
      fail(`roles ${missing.join(', ')} are missing and ${me.rows[0]?.rolname} is not a superuser. ` +
        `Ask a superuser to run:\n  ${roleSql(cfg).join(';\n  ')};`);
    }
    if (superuser) {
      for (const r of [ROLES.owner, ROLES.authenticator]) {
        const pw = r === ROLES.owner ? cfg.ownerPassword : cfg.authenticatorPassword;
        const attrs = r === ROLES.authenticator ? 'login noinherit' : 'login inherit';
        if (!existing.has(r)) await admin.query(`create role ${ident(r)}`);
        await admin.query(`alter role ${ident(r)} ${attrs} nosuperuser nocreatedb nocreaterole nobypassrls password ${literal(pw)}`);
      }
      for (const r of VISITORS) {
        if (!existing.has(r)) await admin.query(`create role ${ident(r)}`);
        await admin.query(`alter role ${ident(r)} nologin nosuperuser nobypassrls`);
        await admin.query(`grant ${ident(r)} to ${ident(ROLES.authenticator)}`);
      }
    }
    const db = await admin.query('select 1 from pg_database where datname = $1', [cfg.dbName]);
    if (db.rowCount === 0) {
      if (!superuser) fail(`database ${cfg.dbName} does not exist and ${me.rows[0]?.rolname} cannot create it.`);
      await admin.query(`create database ${ident(cfg.dbName)} owner ${ident(ROLES.owner)}`);
      log(`created database ${cfg.dbName}`);
    }
    if (superuser) await admin.query(`alter database ${ident(cfg.dbName)} owner to ${ident(ROLES.owner)}`);
  } finally {
    await admin.end();
  }
}
