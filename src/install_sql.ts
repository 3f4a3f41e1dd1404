// The SQL of an install, shared by migrate() (which runs it) and print-sql (which prints it for psql):
// one source, so both ways give the same schema.
import { CRON_JOB_NAME, INSTALL_LOCK, KIT_ROLES, KIT_SCHEMA, VISITOR_ROLES, WORKER_SCHEMA } from './constants.ts';

export const literal = (s: string) => "'" + s.replace(/'/g, "''") + "'";

/**
 * Serialises installers: the second waits here, then finds nothing left to do. A session lock, taken
 * before BEGIN: a transaction that began before the first installer committed would still see the
 * catalog as it was (its cached "no such table"), so the waiting one must start its transaction after.
 */
export const LOCK_SQL = `select pg_advisory_lock(hashtext(${literal(INSTALL_LOCK)}))`;
export const UNLOCK_SQL = `select pg_advisory_unlock(hashtext(${literal(INSTALL_LOCK)}))`;

/**
 * How long any statement of an install waits for a lock (PostgreSQL's lock_timeout, set local to the
 * install transaction; not for the advisory lock above, taken before it). A deploy that changes a policy,
 * trigger or view on a busy table queues the app's readers and writers behind its ACCESS EXCLUSIVE
 * request for as long as it waits, so it waits briefly: then the transaction is rolled back and migrate()
 * tries again (lockRetries), print-sql fails. 0 waits without limit.
 */
export const DEFAULT_LOCK_TIMEOUT_MS = 2000;
/** How many times migrate() runs the whole transaction again after a lock timeout (with backoff). */
export const DEFAULT_LOCK_RETRIES = 8;
/** PostgreSQL's SQLSTATE for a lock not obtained within lock_timeout: the one error an install retries. */
export const LOCK_NOT_AVAILABLE = '55P03';
export const lockTimeoutSql = (ms: number) => `set local lock_timeout = ${Math.round(ms)}`;

/**
 * A duration for lock_timeout in milliseconds: a number (ms, as PostgreSQL reads it) or text such as
 * '2s', '500ms', '1min'. Throws a message naming the bad value.
 */
export function parseLockTimeout(value: number | string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min)?\s*$/.exec(String(value));
  const ms = m ? Number(m[1]) * ({ ms: 1, s: 1000, min: 60_000 } as Record<string, number>)[m[2] ?? 'ms'] : NaN;
  if (!Number.isFinite(ms) || ms > 3_600_000 || (ms > 0 && ms < 1)) {
    throw new Error(`lock timeout must be a duration from 0 to 1 hour such as 2s, 500ms or 1min (a bare number is milliseconds; 0 waits without limit), got ${JSON.stringify(value)}`);
  }
  return Math.round(ms);
}

/** The schema and the migrations table; a schema ballast that has no migrations table is not ours. */
export const BOOKKEEPING_SQL = `
do $ballast$
begin
  if to_regnamespace('${KIT_SCHEMA}') is not null and to_regclass('${KIT_SCHEMA}.migrations') is null then
    raise exception using errcode = '42P06',
      message = 'schema ${KIT_SCHEMA} exists but was not made by the ballast installer (it has no ${KIT_SCHEMA}.migrations table)',
      hint = 'Rename or drop that schema yourself if it is not needed; ballast will not install over it.';
  end if;
end
$ballast$;
create schema if not exists ${KIT_SCHEMA};
comment on schema ${KIT_SCHEMA} is 'ballast: production safety rails (queues, idempotency, audit, cleanup, checks). Installed by the ballast package; ballast uninstall removes it.';
create table if not exists ${KIT_SCHEMA}.migrations (
  id int primary key,                          -- the number of migrations/NNNNNN-name.sql
  name text not null,                          -- its file name without .sql
  version text not null,                       -- the ballast version that applied it
  applied_at timestamptz not null default now()
);
comment on table ${KIT_SCHEMA}.migrations is
  E'The kit''s migrations applied here (migrations/NNNNNN-name.sql of the ballast package), one row each; inserted before the migration runs, so two installers collide on it.';
`;

/**
 * Creates the kit's roles that are missing, records them in ballast.created_roles (so `uninstall --roles`
 * drops exactly those) and never alters a role that exists. The authenticator and the worker's login role
 * get LOGIN only when a password is given (settings ballast.install_authenticator_password and
 * ballast.install_worker_password for this transaction).
 */
export const ROLES_SQL = `
do $ballast$
declare
  visitors text[] := array[${VISITOR_ROLES.map(literal).join(', ')}];
  authenticator text := ${literal(KIT_ROLES.authenticator)};
  worker text := ${literal(KIT_ROLES.worker)};
  wanted text[] := array[${literal(KIT_ROLES.authenticator)}, ${literal(KIT_ROLES.worker)}] || visitors;
  missing text[];
  password text := nullif(current_setting('ballast.install_authenticator_password', true), '');
  worker_password text := nullif(current_setting('ballast.install_worker_password', true), '');
  r text;
  created text[] := '{}';
begin
  select coalesce(array_agg(w order by w), '{}') into missing
  from unnest(wanted) w where not exists (select 1 from pg_roles where rolname = w);
  if cardinality(missing) = 0 then
    return;
  end if;
  if not (select rolsuper or rolcreaterole from pg_roles where rolname = current_user) then
    raise exception using errcode = '42501',
      message = format('ballast needs the roles %s, which are missing, and %I may not create roles', array_to_string(missing, ', '), current_user),
      hint = 'Install as a role with CREATEROLE, or ask a superuser to create them: ' ||
             (select string_agg(format('create role %I %s', m, case when m = authenticator then 'login noinherit password ''...'''
                                                                    when m = worker then 'login noinherit password ''...''' else 'nologin' end), '; ')
              from unnest(missing) m) || '; then grant ' || array_to_string(visitors, ', ') || ' to ' || authenticator || '.';
  end if;
  foreach r in array missing loop
    if r = authenticator then
      if password is null then
        execute format('create role %I nologin noinherit nosuperuser nocreatedb nocreaterole nobypassrls', r);
        raise notice 'ballast: created role % without LOGIN (no password was given); to let the API log in: alter role % login password ''...''', r, r;
      else
        execute format('create role %I login noinherit nosuperuser nocreatedb nocreaterole nobypassrls password %L', r, password);
      end if;
    elsif r = worker then
      -- NOINHERIT and a member of nothing: it has exactly the grants the kit gives it by name
      if worker_password is null then
        execute format('create role %I nologin noinherit nosuperuser nocreatedb nocreaterole nobypassrls', r);
        raise notice 'ballast: created role % without LOGIN (no password was given); to let ballast''s worker log in: alter role % login password ''...''', r, r;
      else
        execute format('create role %I login noinherit nosuperuser nocreatedb nocreaterole nobypassrls password %L', r, worker_password);
      end if;
    else
      execute format('create role %I nologin nosuperuser nocreatedb nocreaterole nobypassrls', r);
    end if;
    insert into ${KIT_SCHEMA}.created_roles (role_name) values (r) on conflict do nothing;
    created := created || r;
  end loop;
  -- memberships only between roles made just now: an existing role's memberships are its owner's business
  foreach r in array visitors loop
    if (r = any(created) or authenticator = any(created))
       and not pg_has_role(authenticator, r, 'member') then
      execute format('grant %I to %I', r, authenticator);
    end if;
  end loop;
end
$ballast$;
`;

/**
 * What ballast's worker's login role may do in graphile-worker's schema for ballast's worker (ballast_worker),
 * run after graphile-worker's own migrations (they may add tables). The installing role keeps owning that
 * schema: the worker gets USAGE, SELECT on every table and view, INSERT/UPDATE/DELETE on the _private_*
 * tables, and one policy per RLS-enabled table (graphile-worker enables RLS there without policies, so
 * only the owner sees jobs). Not ownership and not membership in an owner role: the kit's SECURITY DEFINER
 * functions call add_job and read jobs as the installing role, and code owned by, or tables alterable
 * by, the worker's role would run as the installer there (a trigger or a replaced function). Idempotent;
 * does nothing when the schema or the role is missing.
 */
export const WORKER_SCHEMA_ACCESS_SQL = `
do $ballast$
declare
  s name := ${literal(WORKER_SCHEMA)};
  w name := ${literal(KIT_ROLES.worker)};
  t record;
begin
  if to_regnamespace(quote_ident(s)) is null or to_regrole(quote_ident(w)) is null then
    return;
  end if;
  execute format('grant usage on schema %I to %I', s, w);
  execute format('grant select on all tables in schema %I to %I', s, w);
  execute format('grant usage on all sequences in schema %I to %I', s, w);
  for t in
    select c.oid::regclass as tbl, c.relrowsecurity as rls
    from pg_class c
    where c.relnamespace = to_regnamespace(quote_ident(s)) and c.relkind in ('r', 'p') and c.relname like '\\_private\\_%'
    order by c.relname
  loop
    execute format('grant insert, update, delete on %s to %I', t.tbl, w);
    if t.rls and not exists (select from pg_policy p where p.polrelid = t.tbl and p.polname = w) then
      execute format('create policy %I on %s for all to %I using (true) with check (true)', w, t.tbl, w);
    end if;
  end loop;
end
$ballast$;
`;

export const recordMigrationSql = (id: number, name: string, version: string) =>
  `insert into ${KIT_SCHEMA}.migrations (id, name, version) values (${id}, ${literal(name)}, ${literal(version)});`;

export const recordInstallSql = (version: string, digest: string) =>
  `insert into ${KIT_SCHEMA}.installs (version, definitions_sha1) values (${literal(version)}, ${literal(digest)});`;

/** The pg_cron jobs of this database that the kit scheduled: named 'ballast_…' or 'ballast …'. */
export const KIT_CRON_JOBS_SQL = `select jobid, jobname from cron.job where jobname ~ ${literal(CRON_JOB_NAME.source)} and database = current_database() order by jobname`;
