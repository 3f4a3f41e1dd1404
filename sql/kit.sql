-- The kit's shared pieces: its version, the owner-only policy every ballast table gets, pg_cron jobs.
-- ballast tables have RLS enabled and forced; only the owner (the kit's SECURITY DEFINER functions and
-- the pg_cron jobs it schedules) reads and writes them directly, API roles go through functions.

-- Applying sql/ must not hurt the app it serves: re-applying a file whose objects did not change takes
-- no lock a reader or writer would queue behind. ALTER TABLE ... ROW LEVEL SECURITY, DROP/CREATE POLICY,
-- CREATE TRIGGER and CREATE OR REPLACE VIEW all lock their table (ACCESS EXCLUSIVE, or SHARE ROW
-- EXCLUSIVE for a trigger) even when they would change nothing, so the files declare these objects
-- through the ensure_* helpers below, which compare with the catalog first and only replace what differs.
-- The installer runs with a short lock_timeout and retries (src/migrate.ts): a changed object on a busy
-- table waits at most that long, and so do the writers queued behind it.

---- sql_text_key
---- A definition as the ensure_* helpers compare it: lower case and single spaces outside quotes.
create or replace function ballast.sql_text_key(sql text)
returns text as $$
  select coalesce(string_agg(
           case when x.m[1] ~ '^[''"]' and length(x.m[1]) > 1 then x.m[1]  -- a quoted literal or identifier: as is
                else lower(regexp_replace(regexp_replace(x.m[1], '\s+', ' ', 'g'), ' ?([(),]) ?', '\1', 'g')) end,
           '' order by x.n), '')
  from regexp_matches(regexp_replace(btrim(sql), '\s*;\s*$', ''), '(''(?:[^'']|'''')*''|"(?:[^"]|"")*"|[^''"]+|[''"])', 'g')
       with ordinality as x(m, n)
$$ language sql immutable strict;
comment on function ballast.sql_text_key(text) is
  E'A SQL fragment normalised for comparison: lower case, whitespace collapsed and none around parentheses and commas, a trailing semicolon dropped; quoted literals and identifiers kept as written. Used by ensure_trigger and ensure_policy.';

---- assert_relation
---- Raises 22004 for a null relation and 42P01 for an oid no relation has (dropped since it was looked up).
-- A regclass argument can hold any oid ('12345'::oid::regclass): without this check a dropped one reaches
-- format('%s', ...) as a bare number and fails later with a confusing error, or is accepted.
create or replace function ballast.assert_relation(tbl regclass, fn text)
returns void as $$
begin
  if tbl is null then
    raise exception using errcode = '22004', message = format('%s: the relation must not be null', fn),
      hint = 'Pass a relation as a regclass, e.g. ''app_public.funds''::regclass.';
  end if;
  if not exists (select from pg_catalog.pg_class c where c.oid = tbl) then
    raise exception using errcode = '42P01', message = format('%s: no relation has oid %s (dropped?)', fn, tbl::oid),
      hint = 'Pass an existing relation, by name: ''schema.name''::regclass.';
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.assert_relation(regclass, text) is
  E'Input check shared by the kit''s functions that take a relation: raises 22004 for null, 42P01 when no relation has the oid (dropped). fn names the caller in the message.';

---- ensure_policy
---- Creates a row level security policy, or replaces it when its definition differs; unchanged, nothing.
-- An expression is compared as PostgreSQL prints it: parsed on a temporary copy of the table's columns,
-- because a candidate policy on the table itself would take the ACCESS EXCLUSIVE lock this avoids.
create or replace function ballast.ensure_policy(
  tbl regclass, policy_name name, command text default 'all', roles name[] default array['public']::name[],
  using_expr text default null, check_expr text default null, permissive boolean default true)
returns boolean as $$
declare
  rel record;
  cmd "char";
  role_oids oid[];
  unknown name[];
  cur record;
  want_qual text;
  want_check text;
  stmt text;
  present boolean;
  same boolean := false;
begin
  perform ballast.assert_relation(tbl, 'ensure_policy');
  select c.relkind, c.relname, c.oid::regclass::text as name into rel from pg_class c where c.oid = tbl;
  if rel.relkind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('ensure_policy: %s is not a table (relkind %s); policies belong to tables', rel.name, rel.relkind);
  end if;
  if policy_name is null or policy_name = '' then
    raise exception using errcode = '22023', message = format('ensure_policy: policy_name must be a name, got %L (on %s)', policy_name, rel.name);
  end if;
  cmd := case lower(command) when 'all' then '*' when 'select' then 'r' when 'insert' then 'a' when 'update' then 'w' when 'delete' then 'd' end;
  if cmd is null then
    raise exception using errcode = '22023',
      message = format('ensure_policy: command must be all, select, insert, update or delete, got %L (policy %I on %s)', command, policy_name, rel.name);
  end if;
  if roles is null or cardinality(roles) = 0 or array_position(roles, null) is not null then
    raise exception using errcode = '22023',
      message = format('ensure_policy: roles must name at least one role (public for everyone), got %L (policy %I on %s)', roles, policy_name, rel.name);
  end if;
  select array_agg(r order by r) into unknown from unnest(roles) r
   where lower(r) <> 'public' and not exists (select from pg_roles a where a.rolname = r);
  if unknown is not null then
    raise exception using errcode = '42704',
      message = format('ensure_policy: role %s does not exist (policy %I on %s)', array_to_string(unknown, ', '), policy_name, rel.name);
  end if;
  if nullif(btrim(using_expr), '') is null and nullif(btrim(check_expr), '') is null then
    raise exception using errcode = '22023',
      message = format('ensure_policy: policy %I on %s needs using_expr, check_expr or both, got neither', policy_name, rel.name);
  end if;
  if cmd = 'a' and using_expr is not null then
    raise exception using errcode = '22023',
      message = format('ensure_policy: an insert policy takes only check_expr, got using_expr %L (policy %I on %s)', using_expr, policy_name, rel.name);
  end if;
  if cmd in ('r', 'd') and check_expr is not null then
    raise exception using errcode = '22023',
      message = format('ensure_policy: a %s policy takes only using_expr, got check_expr %L (policy %I on %s)', lower(command), check_expr, policy_name, rel.name);
  end if;
  role_oids := array(select distinct case when lower(r) = 'public' then 0::oid else (select a.oid from pg_roles a where a.rolname = r) end
                       from unnest(roles) r order by 1);
  -- %%s: the table, filled in below (the real one, or the temporary copy)
  stmt := format('create policy %I on %%s as %s for %s to %s%s%s', policy_name,
                 case when permissive then 'permissive' else 'restrictive' end, lower(command),
                 (select string_agg(case when lower(r) = 'public' then 'public' else quote_ident(r) end, ', ') from unnest(roles) r),
                 case when using_expr is not null then format(' using (%s)', using_expr) else '' end,
                 case when check_expr is not null then format(' with check (%s)', check_expr) else '' end);

  select p.polcmd, p.polpermissive, array(select distinct u from unnest(p.polroles) u order by 1) as roles,
         pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as with_check
    into cur from pg_policy p where p.polrelid = tbl and p.polname = policy_name;
  present := found;
  if present and cur.polcmd = cmd and cur.polpermissive = permissive and cur.roles = role_oids
     and (cur.qual is null) = (using_expr is null) and (cur.with_check is null) = (check_expr is null) then
    if coalesce(ballast.sql_text_key(cur.qual) = ballast.sql_text_key(using_expr), cur.qual is null)
       and coalesce(ballast.sql_text_key(cur.with_check) = ballast.sql_text_key(check_expr), cur.with_check is null) then
      same := true;  -- written as PostgreSQL prints it (e.g. true): nothing to parse
    else
      begin
        execute format('create temporary table %I (like %s)', rel.relname, tbl);
        execute format(stmt, format('pg_temp.%I', rel.relname));
        select pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) into want_qual, want_check
          from pg_policy p where p.polrelid = format('pg_temp.%I', rel.relname)::regclass and p.polname = policy_name;
        execute format('drop table pg_temp.%I', rel.relname);
        same := want_qual is not distinct from cur.qual and want_check is not distinct from cur.with_check;
      exception when insufficient_privilege or duplicate_table then
        same := false;  -- no TEMP privilege, or a temporary table of that name: replace (right, but it locks)
      when syntax_error_or_access_rule_violation then
        same := false;  -- a bad expression: the create below reports it (22023), changing nothing
      end;
    end if;
  end if;
  if same then
    return false;
  end if;
  -- one block: a bad expression rolls the drop back with it, so the old policy stays as it was
  begin
    if present then
      execute format('drop policy %I on %s', policy_name, tbl);
    end if;
    execute format(stmt, tbl);
  exception when syntax_error_or_access_rule_violation then
    if sqlstate = '42501' then
      raise;  -- not the text's fault: the caller may not change this table
    end if;
    raise exception using errcode = '22023',
      message = format('ensure_policy: policy %I on %s: %s is not a valid policy on that table: %s (SQLSTATE %s)', policy_name, rel.name,
                       concat_ws(' and ', 'using_expr ' || quote_literal(left(using_expr, 200)), 'check_expr ' || quote_literal(left(check_expr, 200))),
                       sqlerrm, sqlstate),
      hint = 'using_expr and check_expr are boolean SQL expressions over the table''s columns, e.g. org_id = ballast.current_org_id(); nothing was changed.';
  end;
  return true;
end;
$$ language plpgsql volatile;
comment on function ballast.ensure_policy(regclass, name, text, name[], text, text, boolean) is
  E'Create the policy policy_name on tbl, or drop and re-create it when its command, roles, permissive/restrictive or expressions differ from the ones given; unchanged, it does nothing and takes no lock on the table. Returns whether it (re)created the policy. 22004 for a null table, 42P01 for a dropped one, 42809 for one that is not a table, 42704 for an unknown role, 22023 for a bad name, command, roles or expression combination, or an expression that does not parse or names an unknown column (the message quotes it and PostgreSQL''s error; nothing changed).';

---- ensure_trigger
---- Creates a trigger, or replaces it when pg_get_triggerdef differs from the definition; unchanged, nothing.
-- definition is what follows "create trigger <name>", written as pg_get_triggerdef(oid, true) prints it
-- (events in the order insert, delete, update, truncate; arguments as 'literals'). Another spelling is
-- still right, only re-created (and the table locked) on every apply: test/deploy_safety.test.ts fails then.
create or replace function ballast.ensure_trigger(tbl regclass, trigger_name name, definition text)
returns boolean as $$
declare
  rel_name text;
  cur record;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'ensure_trigger: tbl must not be null';
  end if;
  rel_name := tbl::text;
  if trigger_name is null or trigger_name = '' then
    raise exception using errcode = '22023', message = format('ensure_trigger: trigger_name must be a name, got %L (on %s)', trigger_name, rel_name);
  end if;
  if definition is null or btrim(definition) = '' then
    raise exception using errcode = '22023',
      message = format('ensure_trigger: the definition of trigger %I on %s must be the text after "create trigger %I", got %L',
                       trigger_name, rel_name, trigger_name, definition);
  end if;
  select t.oid, t.tgenabled, pg_get_triggerdef(t.oid, true) as def into cur
    from pg_trigger t where t.tgrelid = tbl and t.tgname = trigger_name and not t.tgisinternal;
  if found and cur.tgenabled = 'O'
     and ballast.sql_text_key(cur.def) = ballast.sql_text_key(format('create trigger %I %s', trigger_name, definition)) then
    return false;
  end if;
  -- one block: a bad definition rolls the drop back with it, so the old trigger stays as it was
  begin
    if found then
      execute format('drop trigger %I on %s', trigger_name, tbl);
    end if;
    execute format('create trigger %I %s', trigger_name, definition);
  exception when syntax_error_or_access_rule_violation then
    if sqlstate = '42501' then
      raise;  -- not the text's fault: the caller may not change this table or run that function
    end if;
    raise exception using errcode = '22023',
      message = format('ensure_trigger: definition %L of trigger %I on %s is not a valid trigger definition: %s (SQLSTATE %s)',
                       left(definition, 300), trigger_name, rel_name, sqlerrm, sqlstate),
      hint = format('definition is the text after "create trigger %I", e.g. after insert on %s for each statement execute function myschema.my_fn(); nothing was changed.', trigger_name, rel_name);
  end;
  if not exists (select from pg_trigger t where t.tgrelid = tbl and t.tgname = trigger_name) then
    raise exception using errcode = '22023',
      message = format('ensure_trigger: definition %L creates trigger %I on another table than %s', definition, trigger_name, rel_name);
  end if;
  return true;
end;
$$ language plpgsql volatile;
comment on function ballast.ensure_trigger(regclass, name, text) is
  E'Create the trigger trigger_name on tbl from definition (the text after "create trigger <name>"), or drop and re-create it when pg_get_triggerdef differs or the trigger is disabled; unchanged, it does nothing and takes no lock on the table. Returns whether it (re)created the trigger. 22004 for a null table, 22023 for a missing name or definition, a definition naming another table, or one that does not parse or names an unknown table, column or function (the message quotes it and PostgreSQL''s error; nothing changed).';

---- ensure_statement_triggers
---- The four AFTER … FOR EACH STATEMENT triggers (insert, update, delete, truncate) of one function, through ensure_trigger.
-- How the kit watches a table (enable_audit, invalidate_on_change): INSERT sees the new rows, UPDATE the
-- old and the new, DELETE the old, through transition tables named new_table / old_table; TRUNCATE none.
create or replace function ballast.ensure_statement_triggers(tbl regclass, name_prefix text, fn_call text, new_table name, old_table name)
returns boolean as $$
declare
  ins boolean;
  upd boolean;
  del boolean;
  trn boolean;
begin
  perform ballast.assert_relation(tbl, 'ensure_statement_triggers');
  if name_prefix is null or name_prefix = '' or fn_call is null or btrim(fn_call) = '' or new_table is null or old_table is null then
    raise exception using errcode = '22004',
      message = format('ensure_statement_triggers: name_prefix, fn_call, new_table and old_table are all needed (on %s), got %L, %L, %L, %L',
                       tbl, name_prefix, fn_call, new_table, old_table);
  end if;
  -- one call each, all four always made (an "or" could skip a call once one returned true)
  ins := ballast.ensure_trigger(tbl, (name_prefix || 'insert')::name, format(
    'after insert on %s referencing new table as %I for each statement execute function %s', tbl, new_table, fn_call));
  upd := ballast.ensure_trigger(tbl, (name_prefix || 'update')::name, format(
    'after update on %s referencing old table as %I new table as %I for each statement execute function %s', tbl, old_table, new_table, fn_call));
  del := ballast.ensure_trigger(tbl, (name_prefix || 'delete')::name, format(
    'after delete on %s referencing old table as %I for each statement execute function %s', tbl, old_table, fn_call));
  trn := ballast.ensure_trigger(tbl, (name_prefix || 'truncate')::name, format(
    'after truncate on %s for each statement execute function %s', tbl, fn_call));
  return ins or upd or del or trn;
end;
$$ language plpgsql volatile;
comment on function ballast.ensure_statement_triggers(regclass, text, text, name, name) is
  E'The triggers <name_prefix>insert, update, delete and truncate on tbl: AFTER … FOR EACH STATEMENT, executing fn_call (e.g. ''ballast.tg__audit(...)''), with the transition tables named new_table and old_table; each through ensure_trigger, so unchanged ones are left alone. Returns whether any was (re)created. 22004 for a null or dropped table (42P01) or a missing argument.';

---- ensure_view
---- Creates a view, or replaces it when its query, columns or options differ; unchanged, nothing.
-- The query is compared as PostgreSQL prints it, parsed into a temporary view. CREATE OR REPLACE VIEW
-- keeps grants, comment and dependent views; when it cannot (a column dropped, renamed or retyped) the
-- view is dropped and created, which fails, naming them, while other objects depend on it.
create or replace function ballast.ensure_view(view_name text, definition text, options text[] default '{}')
returns boolean as $$
declare
  parts text[];
  existing regclass;
  kind "char";
  with_clause text;
  same boolean := false;
begin
  begin
    parts := parse_ident(view_name);
  exception when invalid_parameter_value then
    parts := null;
  end;
  if view_name is null or coalesce(cardinality(parts), 0) <> 2 then
    raise exception using errcode = '22023',
      message = format('ensure_view: view_name must be schema-qualified (schema.view), got %L', view_name);
  end if;
  if definition is null or btrim(definition) = '' then
    raise exception using errcode = '22023', message = format('ensure_view: the definition of %s must be a query, got %L', view_name, definition);
  end if;
  if options is null or exists (select from unnest(options) o where o is null or o !~ '^[a-z_]+=[a-z0-9_]+$') then
    raise exception using errcode = '22023',
      message = format('ensure_view: options must be name=value reloptions such as security_invoker=true, got %L (view %s)', options, view_name);
  end if;
  with_clause := case when cardinality(options) > 0 then format(' with (%s)', array_to_string(options, ', ')) else '' end;
  existing := to_regclass(format('%I.%I', parts[1], parts[2]));
  if existing is not null then
    select c.relkind into kind from pg_class c where c.oid = existing;
    if kind <> 'v' then
      raise exception using errcode = '42809', message = format('ensure_view: %s exists and is not a view (relkind %s)', existing, kind);
    end if;
    begin
      execute format('create temporary view ballast_ensure_view_candidate%s as %s', with_clause, definition);
      select pg_get_viewdef(existing) = pg_get_viewdef('pg_temp.ballast_ensure_view_candidate'::regclass)
         and (select coalesce(array_agg(o order by o), '{}') from pg_class c, unnest(c.reloptions) o where c.oid = existing)
           = (select coalesce(array_agg(o order by o), '{}') from pg_class c, unnest(c.reloptions) o
               where c.oid = 'pg_temp.ballast_ensure_view_candidate'::regclass)
         and array(select row(a.attname, a.atttypid, a.atttypmod, a.attcollation)::text from pg_attribute a
                    where a.attrelid = existing and a.attnum > 0 and not a.attisdropped order by a.attnum)
           = array(select row(a.attname, a.atttypid, a.atttypmod, a.attcollation)::text from pg_attribute a
                    where a.attrelid = 'pg_temp.ballast_ensure_view_candidate'::regclass and a.attnum > 0 and not a.attisdropped
                    order by a.attnum)
        into same;
      drop view pg_temp.ballast_ensure_view_candidate;
    exception when insufficient_privilege or duplicate_table then
      same := false;  -- no TEMP privilege: replace (right, but it locks)
    when syntax_error_or_access_rule_violation then
      same := false;  -- a bad query: the create below reports it (22023), changing nothing
    end;
    if same then
      return false;
    end if;
  end if;
  -- one block: a bad query rolls a drop back with it, so the old view stays as it was
  begin
    if existing is not null then
      begin
        execute format('create or replace view %I.%I%s as %s', parts[1], parts[2], with_clause, definition);
        return true;
      exception when invalid_table_definition or datatype_mismatch then
        execute format('drop view %s', existing);  -- no cascade: objects that depend on it make this fail, named
      end;
    end if;
    execute format('create view %I.%I%s as %s', parts[1], parts[2], with_clause, definition);
  exception when syntax_error_or_access_rule_violation then
    if sqlstate = '42501' then
      raise;  -- not the text's fault: the caller may not create there or read those tables
    end if;
    raise exception using errcode = '22023',
      message = format('ensure_view: the definition of %s is not a valid view query: %s (SQLSTATE %s); got %L',
                       view_name, sqlerrm, sqlstate, left(definition, 300)),
      hint = 'definition is a select over existing tables and columns, e.g. select id, org_id from myschema.orders; nothing was changed.';
  end;
  return true;
end;
$$ language plpgsql volatile;
comment on function ballast.ensure_view(text, text, text[]) is
  E'Create the view view_name (schema.view) as definition with options (e.g. {security_invoker=true}), or replace it when its query, columns or options differ: create or replace, or drop and create when a column is dropped, renamed or retyped (failing while other objects depend on it). Unchanged, it does nothing and takes no lock. Returns whether it changed the view. 22023 for an unqualified name, an empty query, a malformed option, or a query that does not parse or names an unknown table or column (the message quotes it and PostgreSQL''s error; nothing changed), 42809 when the name is another kind of relation.';

---- owner_only_policy
---- Gives a ballast table RLS (enabled and forced) with one policy: the owner may do everything.
create or replace function ballast.owner_only_policy(tbl regclass)
returns void as $$
declare
  rel record;
begin
  perform ballast.assert_relation(tbl, 'owner_only_policy');
  select c.relkind, c.relrowsecurity, c.relforcerowsecurity, r.rolname as owner, c.oid::regclass::text as name into rel
    from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = tbl;
  if rel.relkind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('owner_only_policy: %s is not a table (relkind %s)', rel.name, rel.relkind);
  end if;
  -- ALTER TABLE ... ROW LEVEL SECURITY locks the table ACCESS EXCLUSIVE even when it changes nothing
  if not rel.relrowsecurity then
    execute format('alter table %s enable row level security', tbl);
  end if;
  if not rel.relforcerowsecurity then
    execute format('alter table %s force row level security', tbl);
  end if;
  perform ballast.ensure_policy(tbl, 'owner_all', 'all', array[rel.owner]::name[], 'true', 'true');
end;
$$ language plpgsql volatile;
comment on function ballast.owner_only_policy(regclass) is
  E'Enable and force RLS on a kit table and allow its owner everything; other roles get nothing. Changes (and locks) the table only where it differs. 22004 for null, 42P01 for a dropped relation, 42809 for a relation that is not a table.';

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

---- compatible_since
---- The oldest kit version whose code (the API, the worker) still works with this database's kit.
-- A rolling deploy migrates first, then replaces pods one at a time: meanwhile pods of the previous
-- version serve against the upgraded database, and /health/ready (api/health.ts) keeps them ready when
-- their version is at least this one. A release that drops, renames or changes anything older code uses
-- (a table or column it reads, a function's signature or meaning, a setting) raises it to its own
-- version: then older pods turn unready as soon as the upgrade commits.
create or replace function ballast.compatible_since()
returns text as $$
  select '0.2.0'::text
$$ language sql stable;
comment on function ballast.compatible_since() is
  E'The oldest ballast version whose code still works with the kit installed here (for /health/ready during a rolling deploy); raised by a release that breaks what older code uses.';
grant execute on function ballast.compatible_since() to ballast_authenticator;

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
     'Database roles of yours that act as the kit''s visitor roles, each mapped to the kit role it is granted (grant ballast_member to authenticated), e.g. {"anon": "ballast_anonymous", "authenticated": "ballast_member"}. verify_migration_success() checks each has exactly that role''s rights and no RLS bypass.'),
    ('worker_schema', '"ballast_worker"'::jsonb,
     'The graphile-worker schema the kit queues its jobs in (ballast_deliver_cache_invalidations, ballast_report_error) and reads for /metrics. "ballast_worker" for ballast''s own worker (run() from ballast/worker); the schema of your own runner, e.g. "graphile_worker", when you add ballast''s taskList and crontab to it. A JSON string; the role that installed the kit needs rights on that schema''s add_job, add_jobs and jobs.'),
    ('audit_admin_rule', 'null'::jsonb,
     'Your function that says whether the session is an admin of its organisation (no arguments, returns boolean, executable by ballast_admin), e.g. "app_private.is_current_org_admin": ballast.admin_audit_log shows an org''s rows only to a ballast_admin whose role claim is admin and for whom it returns true. A JSON string naming it; null (the default) shows the log to no visitor, because the role claim alone proves no membership.')
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
    if name = 'audit_admin_rule' then
      perform ballast.apply_audit_admin_rule();  -- sql/audit.sql: back to "no visitor reads the log"
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
  if name = 'worker_schema' then
    if jsonb_typeof(value) <> 'string' or octet_length(value #>> '{}') not between 1 and 63 or (value #>> '{}') ~ '[[:cntrl:]]'
       or (value #>> '{}') = 'ballast' or (value #>> '{}') like 'pg\_%' then
      raise exception using errcode = '22023',
        message = format('configure: worker_schema must be a JSON string naming a graphile-worker schema (1 to 63 bytes, not ballast or pg_*), got %s', value),
        hint = 'e.g. select ballast.configure(''worker_schema'', ''"graphile_worker"'') when ballast''s tasks run in your own graphile-worker runner.';
    end if;
    -- A schema that is not there yet is accepted: graphile-worker creates it when its first runner starts.
    -- One that is there must be graphile-worker's, or every wake-up and error report would fail later.
    if to_regnamespace(quote_ident(value #>> '{}')) is not null and not exists (
         select 1 from pg_proc p where p.pronamespace = to_regnamespace(quote_ident(value #>> '{}')) and p.proname = 'add_jobs') then
      raise exception using errcode = '22023',
        message = format('configure: worker_schema %s names a schema without graphile-worker (no function %I.add_jobs)', value, value #>> '{}'),
        hint = 'Name the schema your graphile-worker runner uses (its schema option; graphile_worker by default).';
    end if;
  end if;
  if name = 'audit_admin_rule' then
    perform ballast.audit_admin_rule_function(value);  -- sql/audit.sql: raises unless it names a usable function
  end if;
  insert into ballast.settings as s (name, value) values (configure.name, configure.value)
  on conflict on constraint settings_pkey do update set value = excluded.value, updated_at = now();
  if name in ('org_claim', 'role_claim') then
    perform ballast.apply_claim_settings();
  end if;
  if name = 'audit_admin_rule' then
    perform ballast.apply_audit_admin_rule();
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

---- worker_schema
---- The graphile-worker schema the kit queues jobs in and reads (the setting worker_schema).
create or replace function ballast.worker_schema()
returns name as $$
  select (ballast.setting('worker_schema') #>> '{}')::name
$$ language sql stable security definer set search_path = pg_catalog;  -- ballast's worker reads it without reading every setting
comment on function ballast.worker_schema() is
  E'The graphile-worker schema the kit''s SQL queues jobs in and reads (setting worker_schema, default ballast_worker); quote it with format(''%I'').';
