-- The kit's shared pieces: its version, the owner-only policy every ballast table gets, pg_cron jobs.
-- ballast tables have RLS enabled and forced; only the owner (the kit's SECURITY DEFINER functions and
-- the pg_cron jobs it schedules) reads and writes them directly, API roles go through functions.

---- owner_only_policy
---- Gives a ballast table RLS (enabled and forced) with one policy: the owner may do everything.
create or replace function ballast.owner_only_policy(tbl regclass)
returns void as $$
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'owner_only_policy: table must not be null';
  end if;
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format('drop policy if exists owner_all on %s', tbl);
  execute format('create policy owner_all on %s for all to %I using (true) with check (true)',
    tbl, (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = tbl));
end;
$$ language plpgsql volatile;
comment on function ballast.owner_only_policy(regclass) is
  E'Enable and force RLS on a kit table and allow its owner everything; other roles get nothing.';

select ballast.owner_only_policy('ballast.migrations');
select ballast.owner_only_policy('ballast.installs');
select ballast.owner_only_policy('ballast.created_roles');
select ballast.owner_only_policy('ballast.settings');
select ballast.owner_only_policy('ballast.verify_exemptions');
select ballast.owner_only_policy('ballast.worker_heartbeats');

---- schedule_job
---- Creates or updates a named pg_cron job, where pg_cron lives (cron.database_name); elsewhere (the
---- shadow database, a database without the extension) it does nothing and says so by returning null.
create or replace function ballast.schedule_job(job_name text, schedule text, command text)
returns bigint as $$
begin
  if job_name is null or job_name !~ '^[a-z][a-z0-9_ ]{0,62}$' then
    raise exception using errcode = '22023',
      message = format('schedule_job: job_name %L must be 1 to 63 characters of a-z, 0-9, _ and space, starting with a letter', job_name);
  end if;
  if schedule is null or command is null or btrim(command) = '' then
    raise exception using errcode = '22004',
      message = format('schedule_job: job %L needs a schedule and a command (got schedule %L, command %L)', job_name, schedule, command);
  end if;
  if to_regnamespace('cron') is null then
    return null;
  end if;
  if not has_schema_privilege('cron', 'usage') then
    raise notice 'ballast: pg_cron job % not scheduled: % may not use schema cron (a superuser can: grant usage on schema cron to %)',
      job_name, current_user, current_user;
    return null;
  end if;
  -- cron.schedule with a name updates the job of that name in place (pg_cron >= 1.3)
  return cron.schedule(job_name, schedule, command);
end;
$$ language plpgsql volatile;
comment on function ballast.schedule_job(text, text, text) is
  E'Create or update the pg_cron job job_name (schedule in UTC, as pg_cron reads it); returns its jobid, or null where pg_cron is not installed (only cron.database_name has it). 22023 for a bad job name, 22004 for a missing schedule or command; pg_cron itself rejects a bad schedule.';

---- unschedule_job
---- Removes a named pg_cron job if it exists; false when there was none or pg_cron is not installed here.
create or replace function ballast.unschedule_job(job_name text)
returns boolean as $$
begin
  if job_name is null then
    raise exception using errcode = '22004', message = 'unschedule_job: job_name must not be null';
  end if;
  if to_regnamespace('cron') is null then
    return false; -- checked alone: a condition naming cron.job could not even be planned here
  end if;
  if not exists (select from cron.job j where j.jobname = unschedule_job.job_name) then
    return false;
  end if;
  return cron.unschedule(job_name);
end;
$$ language plpgsql volatile;
comment on function ballast.unschedule_job(text) is
  E'Remove the pg_cron job job_name; false when no such job exists or pg_cron is not installed in this database. 22004 for a null name.';

---- version
---- The version of the kit installed in this database (package.json of the installer that last changed it).
create or replace function ballast.version()
returns text as $$
  select i.version from ballast.installs i order by i.id desc limit 1
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.version() is
  E'The ballast version installed in this database, e.g. ''0.1.0'' (the newest row of ballast.installs).';

-- The kit's roles reach its functions and views through the schema; what each may do is granted per object.
grant usage on schema ballast to ballast_authenticator, ballast_anonymous, ballast_member, ballast_admin;

---- setting_defaults
---- Every setting the kit reads, with its default and what it means.
create or replace function ballast.setting_defaults()
returns table (name text, value jsonb, description text) as $$
  values
    ('verify_schemas', '[]'::jsonb,
     'Schemas of yours that verify_migration_success() checks besides ballast: RLS enabled and forced, and policies, on every table. A JSON array of schema names, e.g. ["app_public", "app_private"].'),
    ('exposed_schemas', '[]'::jsonb,
     'Schemas your API exposes (PostGraphile''s schemas): verify_migration_success() wants every SECURITY DEFINER function there commented with why it is safe. A JSON array of schema names.'),
    ('org_claim', '"org_id"'::jsonb,
     'The top-level JWT claim holding the uuid of the organisation the session acts for (ballast.current_org_id()), e.g. "https://example.com/org_id" for a namespaced Auth0 claim. A JSON string; the API''s JWT_ORG_CLAIM must name the same claim.'),
    ('role_claim', '"role"'::jsonb,
     'The top-level JWT claim holding the application role, member or admin (ballast.current_app_role()), e.g. "https://example.com/role". A JSON string; the API''s JWT_ROLE_CLAIM must name the same claim.'),
    ('visitor_roles', '{}'::jsonb,
     'Database roles of yours that act as the kit''s visitor roles, each mapped to the kit role it is granted (grant ballast_member to authenticated), e.g. {"anon": "ballast_anonymous", "authenticated": "ballast_member"}. verify_migration_success() checks each has exactly that role''s rights and no RLS bypass.')
$$ language sql immutable;
comment on function ballast.setting_defaults() is
  E'The settings ballast.configure() accepts: name, default value (jsonb) and description.';

---- setting
---- A setting's value: what ballast.configure() stored, else its default.
create or replace function ballast.setting(name text)
returns jsonb as $$
  select coalesce((select s.value from ballast.settings s where s.name = setting.name),
                  (select d.value from ballast.setting_defaults() d where d.name = setting.name))
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.setting(text) is
  E'The value of a ballast setting (see ballast.setting_defaults()); null for a name that is not a setting.';

---- configure
---- Sets one setting after checking its value; null resets it to the default.
create or replace function ballast.configure(name text, value jsonb)
returns jsonb as $$
declare
  known text[] := array(select d.name from ballast.setting_defaults() d order by 1);
begin
  if name is null or not name = any(known) then
    raise exception using errcode = '22023',
      message = format('configure: unknown setting %L', name),
      hint = 'Settings: ' || array_to_string(known, ', ') || ' (select * from ballast.setting_defaults()).';
  end if;
  if value is null then
    delete from ballast.settings s where s.name = configure.name;
    if name in ('org_claim', 'role_claim') then
      perform ballast.apply_claim_settings();  -- sql/access.sql: the claim names as inlinable literals
    end if;
    return ballast.setting(name);
  end if;
  if name in ('org_claim', 'role_claim') then
    if jsonb_typeof(value) <> 'string' or length(value #>> '{}') not between 1 and 200 or (value #>> '{}') ~ '[[:cntrl:]]' then
      raise exception using errcode = '22023',
        message = format('configure: %s must be a JSON string naming a top-level claim of your tokens (1 to 200 characters, no control characters), got %s', name, value),
        hint = format('e.g. select ballast.configure(%L, ''"https://example.com/%s"'')', name, case name when 'org_claim' then 'org_id' else 'role' end);
    end if;
    if (value #>> '{}') in ('sub', 'exp', 'iat', 'nbf', 'iss', 'aud', 'jti') then
      raise exception using errcode = '22023',
        message = format('configure: %s must not be the registered claim %s (sub, exp, iat, nbf, iss, aud and jti mean what RFC 7519 says)', name, value);
    end if;
    if value = ballast.setting(case name when 'org_claim' then 'role_claim' else 'org_claim' end) then
      raise exception using errcode = '22023',
        message = format('configure: %s %s is already the %s: the organisation and the role need claims of their own', name, value,
                         case name when 'org_claim' then 'role_claim' else 'org_claim' end);
    end if;
  end if;
  if name = 'visitor_roles' then
    if jsonb_typeof(value) <> 'object' or exists (
         select 1 from jsonb_each(value) e
          where length(e.key) not between 1 and 63 or e.key like 'ballast\_%'
             or e.value not in ('"ballast_anonymous"', '"ballast_member"', '"ballast_admin"')) then
      raise exception using errcode = '22023',
        message = format('configure: visitor_roles must be a JSON object mapping your role names (1 to 63 characters, not ballast_*) to ballast_anonymous, ballast_member or ballast_admin, got %s', value),
        hint = 'e.g. select ballast.configure(''visitor_roles'', ''{"anon": "ballast_anonymous", "authenticated": "ballast_member"}''), after grant ballast_anonymous to anon; grant ballast_member to authenticated.';
    end if;
  end if;
  if name in ('verify_schemas', 'exposed_schemas') then
    if jsonb_typeof(value) <> 'array' or exists (
         select 1 from jsonb_array_elements(value) e
         where jsonb_typeof(e) <> 'string' or length(e #>> '{}') not between 1 and 63) then
      raise exception using errcode = '22023',
        message = format('configure: %s must be a JSON array of schema names (1 to 63 characters each), got %s', name, value),
        hint = format('e.g. select ballast.configure(%L, ''["app_public", "app_private"]'')', name);
    end if;
  end if;
  insert into ballast.settings as s (name, value) values (configure.name, configure.value)
  on conflict on constraint settings_pkey do update set value = excluded.value, updated_at = now();
  if name in ('org_claim', 'role_claim') then
    perform ballast.apply_claim_settings();
  end if;
  return value;
end;
$$ language plpgsql volatile;
comment on function ballast.configure(text, jsonb) is
  E'Set a ballast setting (see ballast.setting_defaults()) and return its value; null resets it to the default. 22023 for an unknown name or a value of the wrong shape. org_claim and role_claim take effect in every session once committed (ballast.apply_claim_settings()).';

---- verify_schemas
---- The schemas verify_migration_success() checks for RLS and policies: ballast and the configured ones.
create or replace function ballast.verify_schemas()
returns name[] as $$
  select array['ballast'::name] || array(select jsonb_array_elements_text(ballast.setting('verify_schemas'))::name)
$$ language sql stable;
comment on function ballast.verify_schemas() is
  E'Schemas whose tables verify_migration_success() checks for RLS and policies: ballast, plus the setting verify_schemas.';
