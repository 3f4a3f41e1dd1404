// printSql(): the install as one psql script, for teams that run SQL files themselves. The same SQL as
// migrate() (install_sql.ts, migrations/, sql/), with psql's \if deciding what is already there, so the
// script installs a fresh database and upgrades an older install alike. Not included: graphile-worker's
// schema for ballast's worker (its migrations are graphile-worker's): run them once as the same role
// (npx graphile-worker --schema-only --schema ballast_worker -c <url>), then this script again, whose last
// step gives the worker's login role its rights there (WORKER_SCHEMA_ACCESS_SQL; it skips a missing schema).
import { KIT_SCHEMA } from './constants.ts';
import { definitionsDigest, kitDefinitions, kitMigrations, kitVersion } from './kit_files.ts';
import {
  BOOKKEEPING_SQL, DEFAULT_LOCK_TIMEOUT_MS, LOCK_SQL, UNLOCK_SQL, ROLES_SQL, WORKER_SCHEMA_ACCESS_SQL, literal, recordInstallSql, recordMigrationSql,
} from './install_sql.ts';

export function printSql(): string {
  const version = kitVersion();
  const migrations = kitMigrations();
  const defs = kitDefinitions();
  const digest = definitionsDigest(defs, version);
  const last = migrations.at(-1)!;
  const [major, minor, patch] = version.split('-')[0].split('.').map(Number);
  const out: string[] = [];
  out.push(`-- ballast ${version}: install or upgrade schema ${KIT_SCHEMA} in one transaction.
--   psql -v ON_ERROR_STOP=1 [-v ballast_authenticator_password=...] [-v ballast_worker_password=...] [-v ballast_lock_timeout=5s] -d <database> -f ballast.sql
-- Run it as the role that should own the kit's objects. It refuses a database whose kit is newer.
-- It waits at most ballast_lock_timeout (default ${DEFAULT_LOCK_TIMEOUT_MS}ms) for any lock, so a long transaction on
-- a table it changes cannot queue your app's readers and writers behind it for longer. Unlike
-- \`ballast migrate\`, it does not retry: it fails with SQLSTATE 55P03 (lock timeout), having changed
-- nothing; run it again. Unchanged policies, triggers and views are left alone and take no lock.
\\set ON_ERROR_STOP on
\\if :{?ballast_lock_timeout}
\\else
\\set ballast_lock_timeout ${DEFAULT_LOCK_TIMEOUT_MS}ms
\\endif
${LOCK_SQL};
begin;
set local lock_timeout = :'ballast_lock_timeout';
do $ballast$
declare
  newest int;
  installed text;
begin
  if to_regclass('${KIT_SCHEMA}.migrations') is null then
    return;
  end if;
  select max(id) into newest from ${KIT_SCHEMA}.migrations;
  if to_regclass('${KIT_SCHEMA}.installs') is not null then
    select version into installed from ${KIT_SCHEMA}.installs order by id desc limit 1;
  end if;
  if newest > ${last.id} or string_to_array(split_part(installed, '-', 1), '.')::int[] > array[${major}, ${minor}, ${patch}] then
    raise exception using errcode = '55000',
      message = format('this database has ballast %s (migration %s), newer than this script (ballast ${version}, migrations up to ${last.id}); nothing was changed', installed, newest);
  end if;
end
$ballast$;
${BOOKKEEPING_SQL}`);
  for (const m of migrations) {
    out.push(`-- migration ${m.name}
select not exists (select 1 from ${KIT_SCHEMA}.migrations where id = ${m.id}) as ballast_apply_${m.id} \\gset
\\if :ballast_apply_${m.id}
${recordMigrationSql(m.id, m.name, version)}
${m.body.trim()}
\\endif`);
  }
  out.push(`-- roles (created when missing, never altered)
\\if :{?ballast_authenticator_password}
select set_config('ballast.install_authenticator_password', :'ballast_authenticator_password', true) as ballast_password_set \\gset
\\endif
\\if :{?ballast_worker_password}
select set_config('ballast.install_worker_password', :'ballast_worker_password', true) as ballast_worker_password_set \\gset
\\endif
${ROLES_SQL.trim()}
select set_config('ballast.install_authenticator_password', '', true) as ballast_password_cleared, set_config('ballast.install_worker_password', '', true) as ballast_worker_password_cleared \\gset
-- definitions (sql/), re-applied when they differ from what this database has
select coalesce((select definitions_sha1 from ${KIT_SCHEMA}.installs order by id desc limit 1), '') <> ${literal(digest)} as ballast_definitions \\gset
\\if :ballast_definitions`);
  for (const d of defs) out.push(`-- ${d.name}\n${d.body.trim()}`);
  out.push(`${recordInstallSql(version, digest)}
\\endif
-- the worker's login role's rights in graphile-worker's schema ballast_worker, when that schema exists
${WORKER_SCHEMA_ACCESS_SQL.trim()}
commit;
${UNLOCK_SQL};
`);
  return out.join('\n\n');
}
