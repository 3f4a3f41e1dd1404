-- Audit log (capability: audit): who changed which row of an audited table, when, in which request.
--
-- enable_audit(tbl) puts four AFTER ... FOR EACH STATEMENT triggers on the table (INSERT, UPDATE, DELETE
-- with transition tables, TRUNCATE): one INSERT ... SELECT per statement writes one audit row per changed
-- row, so a 100k-row UPDATE is one set-based insert, not 100k trigger calls. The trigger function is
-- SECURITY DEFINER (the visitors cannot write the log themselves) and reads the actor from the claims: the
-- subject (sub) as text, so subjects that are not uuids ('auth0|123') are audited too.
-- The log is append-only for every role, the owner included: only the audit trigger inserts (see
-- tg_audit_log__insert_from_audit_trigger), UPDATE and TRUNCATE always fail, DELETE only on the cleanup
-- capability's retention path (see tg_audit_log__append_only). These are triggers: the owner and superusers
-- can disable them, and verify__audit reports it.

---- audit_record_id
---- Stable id of one row of one table: 8 bytes from the table name, 8 from the primary key.
-- The key half is the key itself for a single integer key (so a bulk change in key order writes the
-- record_id index almost sequentially, not at random), else the first 8 bytes of md5 of the key values.
create or replace function ballast.audit_record_id(table_name text, pk_columns text[], row_data jsonb)
returns uuid as $$
  select (substr(md5(table_name), 1, 16) || case
    when cardinality(pk_columns) = 1 and jsonb_typeof(row_data -> pk_columns[1]) = 'number'
         and (row_data ->> pk_columns[1]) ~ '^-?[0-9]{1,19}$'
         and (row_data ->> pk_columns[1])::numeric between -9223372036854775808 and 9223372036854775807
      then lpad(to_hex((row_data ->> pk_columns[1])::bigint), 16, '0')
    else substr(md5(case when cardinality(pk_columns) = 1 then coalesce((row_data -> pk_columns[1])::text, 'null')
      else (select string_agg(coalesce((row_data -> k)::text, 'null'), ',' order by i) from unnest(pk_columns) with ordinality u(k, i)) end), 1, 16)
  end)::uuid
$$ language sql immutable parallel safe;
comment on function ballast.audit_record_id(text, text[], jsonb) is
  E'The audit log''s record_id of a row (a uuid: 8 bytes of md5(table_name), then the integer key or 8 bytes of md5 of the key values). A row''s history: where record_id = ballast.audit_record_id(''app_public.funds'', ''{id}'', ''{"id": 42}'').';

---- tg__audit
---- Statement-level audit trigger: one audit row per row in the transition table(s).
-- TG_ARGV: 0 primary key columns (text[]), 1 excluded columns (text[]), 2 the org column or '',
-- 3 'int' when the key is one integer column (record_id is then computed inline, see audit_record_id),
-- 4 schema.table, 5 the first 16 hex digits of md5(schema.table). Computed once by enable_audit.
create or replace function ballast.tg__audit()
returns trigger as $$
declare
  tname text := TG_ARGV[4];             -- the table's name when auditing was enabled (see verify__audit)
  prefix text := TG_ARGV[5];            -- substr(md5(tname), 1, 16): the table half of record_id
  pk text[] := TG_ARGV[0]::text[];
  pk1 text := pk[1];
  int_pk boolean := TG_ARGV[3] = 'int';
  excluded text[] := TG_ARGV[1]::text[];
  org_col text := nullif(TG_ARGV[2], '');
  claims jsonb := ballast.current_claims();
  actor text := claims ->> 'sub';       -- the subject as the identity provider wrote it: 'auth0|123', a uuid, ...
  claim_org uuid := (claims ->> ballast.org_claim())::uuid;  -- current_claims() validated it; the name is a folded constant
  -- a SECURITY DEFINER function runs as the owner, but the role setting still names the role that acted
  actor_role text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  req text := ballast.current_request_id();
  app text := nullif(current_setting('application_name'), '');
  xid bigint := txid_current();
  typed text;
begin
  if TG_OP = 'UPDATE' then
   if exists (select from new_table offset 999) then  -- new_table: only named in an UPDATE's branch
    -- A bulk UPDATE (1,000 rows or more): the diff is computed on the typed columns, with a query built
    -- from the table's columns as they are now (so a column added or dropped since enable_audit is
    -- followed) and run with EXECUTE. Old and new rows are paired by position, as below (row_number()
    -- over the transition tables' scan order); no type is named, so the owner needs no USAGE on the
    -- table's schema. Comparing typed values and building JSON for the changed columns
    -- only costs about half of turning every old and new row into jsonb and comparing key by key (the
    -- path below, which single-row statements take: there, planning this query would cost more than it
    -- saves). A column type without an equality operator (json, point, ...) makes the query fail to plan
    -- (42883): the jsonb path below then does the work. Same rows either way (test-sql/audit.sql).
    select format($q$
      insert into ballast.audit_log (table_name, op, record_id, old_values, new_values, actor_id, actor_role, org_id, request_id, txid, application_name)
      select $1, 'UPDATE', d.rid, d.o, d.n, $4, $5, d.org, $7, $8, $9
        from (select %s as o, %s as n, %s as rid, %s as org
                from (select row_number() over () as ballast_ordinal, x.* from old_table x) o
                join (select row_number() over () as ballast_ordinal, x.* from new_table x) n using (ballast_ordinal)
               where (%s) is distinct from (%s)) d
       where d.n <> '{}'::jsonb$q$,
      coalesce(string_agg(format('case when o.%1$I is distinct from n.%1$I then jsonb_build_object(%1$L, o.%1$I) else ''{}''::jsonb end', c.name), ' || ' order by c.num)
               filter (where not c.name = any (excluded)), '''{}''::jsonb'),
      coalesce(string_agg(format('case when o.%1$I is distinct from n.%1$I then jsonb_build_object(%1$L, n.%1$I) else ''{}''::jsonb end', c.name), ' || ' order by c.num)
               filter (where not c.name = any (excluded)), '''{}''::jsonb'),
      case when int_pk then format('($2 || lpad(to_hex(n.%I::bigint), 16, ''0''))::uuid', pk1)
           else format('ballast.audit_record_id($1, $3, jsonb_build_object(%s))',
                       (select string_agg(format('%L, n.%I', k, k), ', ' order by i) from unnest(pk) with ordinality u(k, i))) end,
      case when org_col is null then '$6' else format('coalesce(n.%I, $6)', org_col) end,
      string_agg('o.' || quote_ident(c.name), ', ' order by c.num), string_agg('n.' || quote_ident(c.name), ', ' order by c.num))
      into typed
      from (select a.attname::text as name, a.attnum as num from pg_catalog.pg_attribute a
             where a.attrelid = TG_RELID and a.attnum > 0 and not a.attisdropped) c;
    begin
      execute typed using tname, prefix, pk, actor, actor_role, claim_org, req, xid, app;
      return null;
    exception when undefined_function then
      null;  -- no equality for some column's type: the jsonb path below
    end;
   end if;
  end if;
  if TG_OP = 'INSERT' then
    insert into ballast.audit_log (table_name, op, record_id, new_values, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'INSERT',
           case when int_pk then (prefix || lpad(to_hex((n.j ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, n.j) end,
           n.j - excluded, actor, actor_role, coalesce((n.j ->> org_col)::uuid, claim_org), req, xid, app
      from (select to_jsonb(x.*) as j from new_table x) n;
  elsif TG_OP = 'UPDATE' then
    -- PostgreSQL appends the old and the new image of each updated row to the two transition tables
    -- together, so position i of one is position i of the other: zipping pairs each row with itself, with
    -- no join, and even when the update changed its key (record_id is then the new key's).
    -- Only the changed columns are written: their old value in old_values, their new one in new_values
    -- (the row after the change is the row before it || new_values). An excluded column never counts as
    -- changed; a row where nothing else changed (set x = x, or only excluded columns) writes no audit row.
    -- z.o <> z.n first: an unchanged row costs one jsonb comparison, not the per-column walk.
    insert into ballast.audit_log (table_name, op, record_id, old_values, new_values, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'UPDATE',
           case when int_pk then (prefix || lpad(to_hex((d.n ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, d.n) end,
           d.o - d.same, d.n - d.same,
           actor, actor_role, coalesce((d.n ->> org_col)::uuid, claim_org), req, xid, app
      from (select z.o, z.n,
                   array(select k from jsonb_object_keys(z.n) k where z.o -> k is not distinct from z.n -> k or k = any (excluded)) as same
              from unnest(array(select to_jsonb(x.*) from old_table x), array(select to_jsonb(x.*) from new_table x)) z(o, n)
             where z.o <> z.n
            offset 0) d  -- a fence: pulled up, the planner would compute same once per use of it
     where (d.n - d.same) <> '{}'::jsonb;
  elsif TG_OP = 'DELETE' then
    insert into ballast.audit_log (table_name, op, record_id, old_values, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'DELETE',
           case when int_pk then (prefix || lpad(to_hex((o.j ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, o.j) end,
           o.j - excluded, actor, actor_role, coalesce((o.j ->> org_col)::uuid, claim_org), req, xid, app
      from (select to_jsonb(x.*) as j from old_table x) o;
  elsif TG_OP = 'TRUNCATE' then
    insert into ballast.audit_log (table_name, op, actor_id, actor_role, org_id, request_id, txid, application_name)
    values (tname, 'TRUNCATE', actor, actor_role, claim_org, req, xid, app);
  end if;
  return null;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set jit = off;
comment on function ballast.tg__audit() is
  E'Statement-level audit trigger installed by ballast.enable_audit(); writes to ballast.audit_log as its owner.';

---- enable_audit
---- Starts auditing a table: validates it, installs the statement-level triggers, records it. Idempotent.
create or replace function ballast.enable_audit(tbl regclass, exclude_columns text[] default '{}', org_column text default null)
returns void as $$
declare
  rel record;
  pk text[];
  unknown text[];
  org_col text;
  org_type regtype;
  key_kind text;
  args text;
begin
  perform ballast.assert_relation(tbl, 'enable_audit');
  select c.relkind, ballast.qualified_name(c.oid) as name into rel from pg_class c where c.oid = tbl;
  if rel.relkind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('enable_audit: %s is not a table (relkind %s); only tables can be audited', rel.name, rel.relkind);
  end if;
  if rel.name = 'ballast.audit_log' then
    raise exception using errcode = '22023', message = 'enable_audit: ballast.audit_log cannot audit itself';
  end if;
  if exclude_columns is null or array_position(exclude_columns, null) is not null then
    raise exception using errcode = '22004',
      message = format('enable_audit: exclude_columns must be an array of column names without nulls, got %L', exclude_columns);
  end if;
  select array_agg(a.attname::text order by k.i) into pk
    from pg_index i
    cross join unnest(i.indkey) with ordinality k(attnum, i)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = tbl and i.indisprimary;
  if pk is null then
    raise exception using errcode = '55000',
      message = format('enable_audit: %s has no primary key; the audit log identifies each row by it', rel.name),
      hint = format('Add one first: alter table %s add primary key (<columns that identify a row>).', rel.name);
  end if;
  select array_agg(e order by e) into unknown from unnest(exclude_columns) e
   where not exists (select 1 from pg_attribute a where a.attrelid = tbl and a.attname = e and a.attnum > 0 and not a.attisdropped);
  if unknown is not null then
    raise exception using errcode = '42703',
      message = format('enable_audit: %s has no column %s to exclude', rel.name, array_to_string(unknown, ', ')),
      hint = format('Columns of %s: %s.', rel.name, (select string_agg(a.attname, ', ' order by a.attnum) from pg_attribute a
                                                      where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped));
  end if;
  org_col := coalesce(org_column, 'org_id');
  select a.atttypid::regtype into org_type from pg_attribute a
   where a.attrelid = tbl and a.attname = org_col and a.attnum > 0 and not a.attisdropped;
  if org_column is not null and org_type is distinct from 'uuid'::regtype then
    raise exception using errcode = '42703',
      message = format('enable_audit: org_column %I of %s must be a uuid column, got %s', org_column, rel.name, coalesce(org_type::text, 'no such column'));
  end if;
  if org_type is distinct from 'uuid'::regtype then
    org_col := null;  -- no org column: the audit rows carry the claims' org_id
  end if;
  select case when cardinality(pk) = 1 and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) then 'int' else '' end
    into key_kind from pg_attribute a where a.attrelid = tbl and a.attname = pk[1];

  -- ensure_statement_triggers (sql/kit.sql): enabling a table again with the same settings (an app's re-applied
  -- definitions do it on every deploy) keeps its triggers and takes no lock on it
  args := format('%L, %L, %L, %L, %L, %L', pk, exclude_columns, coalesce(org_col, ''), key_kind, rel.name, substr(md5(rel.name), 1, 16));
  perform ballast.ensure_statement_triggers(tbl, '_900_audit_', format('ballast.tg__audit(%s)', args), 'new_table', 'old_table');
  delete from ballast.audited_tables a where a.table_name = rel.name;
  insert into ballast.audited_tables (table_name, pk_columns, exclude_columns, org_column)
  values (rel.name, pk, exclude_columns, org_col);
end;
$$ language plpgsql volatile;
comment on function ballast.enable_audit(regclass, text[], text) is
  E'Audit every INSERT, UPDATE, DELETE and TRUNCATE on a table with a primary key into ballast.audit_log (statement-level triggers). exclude_columns are left out of the recorded values; org_column (default: org_id when it is a uuid column) attributes rows to an organisation. Idempotent.';

---- disable_audit
---- Stops auditing a table: drops its audit triggers. Returns whether it was audited. The log is kept.
create or replace function ballast.disable_audit(tbl regclass)
returns boolean as $$
declare
  was boolean;
  trigger_name name;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'disable_audit: tbl must not be null';
  end if;
  was := false;
  for trigger_name in
    select t.tgname from pg_trigger t where t.tgrelid = tbl and not t.tgisinternal
       and t.tgname in ('_900_audit_insert', '_900_audit_update', '_900_audit_delete', '_900_audit_truncate')
  loop
    execute format('drop trigger %I on %s', trigger_name, tbl);
    was := true;
  end loop;
  delete from ballast.audited_tables a where a.table_name = ballast.qualified_name(tbl);
  return was;
end;
$$ language plpgsql volatile;
comment on function ballast.disable_audit(regclass) is
  E'Stop auditing a table (drops its _900_audit_* triggers); its history stays in ballast.audit_log. Returns false when it was not audited.';

---- tg_audit_log__append_only
---- Refuses UPDATE and TRUNCATE on the audit log always, and DELETE outside the retention path.
create or replace function ballast.tg_audit_log__append_only()
returns trigger as $$
begin
  if TG_OP = 'DELETE' then
    perform ballast.audit_log_retention();  -- raises unless this is the cleanup capability's retention path
    return null;
  end if;
  raise exception using errcode = '42501',
    message = format('ballast.audit_log is append-only: %s is not allowed, for any role', TG_OP),
    hint = 'Old audit rows are removed only by the cleanup capability''s retention policy for ballast.audit_log.';
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__append_only() is
  E'Keeps ballast.audit_log append-only: UPDATE and TRUNCATE always fail; DELETE only on the retention path.';

---- tg_audit_log__insert_from_audit_trigger
---- Refuses an INSERT into the audit log unless a trigger (the audit trigger, ballast.tg__audit) makes it.
-- Visitors have no INSERT on the log; the owner's policy owner_all would let the owner insert rows of its
-- choosing, i.e. forge history. The audit trigger's INSERT runs inside a trigger (depth 2 here); a direct
-- INSERT, by any role, the owner and superusers included, does not. Only the depth is checked: naming the
-- caller (GET DIAGNOSTICS PG_CONTEXT) cost several times more on every audited statement, and a role
-- that could write a trigger of its own into the log is the owner, who can also disable this one
-- (verify__audit reports that).
create or replace function ballast.tg_audit_log__insert_from_audit_trigger()
returns trigger as $$
begin
  if pg_trigger_depth() > 1 then
    return null;
  end if;
  raise exception using errcode = '42501',
    message = 'ballast.audit_log: rows are written only by the audit trigger (ballast.tg__audit), not by INSERT, for any role',
    hint = 'Audit a table with ballast.enable_audit(''schema.table''); its changes are then logged here.';
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__insert_from_audit_trigger() is
  E'Keeps forged rows out of ballast.audit_log: an INSERT passes only from inside a trigger (ballast.tg__audit), never as a statement of its own.';

---- audit_log_retention
---- The retention that allows deleting audit rows now, or an error saying why deleting is not allowed.
create or replace function ballast.audit_log_retention()
returns interval as $$
declare
  retain interval;
begin
  if current_setting('ballast.cleanup_table', true) is distinct from 'ballast.audit_log' then
    raise exception using errcode = '42501',
      message = 'ballast.audit_log is append-only: DELETE is allowed only on the cleanup retention path',
      hint = 'The cleanup capability sets ballast.cleanup_table = ''ballast.audit_log'' and deletes rows older than the retention in ballast.cleanup_policies.';
  end if;
  if to_regclass('ballast.cleanup_policies') is not null then
    -- dynamic: the cleanup capability's table may not exist when this file is applied
    execute 'select max(retain) from ballast.cleanup_policies where tbl = ''ballast.audit_log''::regclass' into retain;
  end if;
  if retain is null then
    raise exception using errcode = '42501',
      message = 'ballast.audit_log: no retention policy for ballast.audit_log in ballast.cleanup_policies, so no row may be deleted';
  end if;
  return retain;
end;
$$ language plpgsql stable;
comment on function ballast.audit_log_retention() is
  E'On the cleanup path (ballast.cleanup_table = ''ballast.audit_log''): the audit log''s retain interval from ballast.cleanup_policies; raises otherwise.';

---- tg_audit_log__check_retention
---- After a DELETE on the audit log: every deleted row must be older than the retention, or all is undone.
create or replace function ballast.tg_audit_log__check_retention()
returns trigger as $$
declare
  retain interval := ballast.audit_log_retention();
  youngest timestamptz;
begin
  select max(occurred_at) into youngest from old_table;
  if youngest >= now() - retain then
    raise exception using errcode = '42501',
      message = format('ballast.audit_log: rows from %s are within the retention of %s; only rows before %s may be deleted',
                       youngest, retain, now() - retain);
  end if;
  return null;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__check_retention() is
  E'Undoes a DELETE on ballast.audit_log that removed any row younger than the retention policy allows.';

-- ensure_trigger (sql/kit.sql): audit_log is written by every audited statement; an unchanged trigger is left
-- as it is, so a deploy takes no lock on it
select ballast.ensure_trigger('ballast.audit_log', '_100_append_only_insert',
  'before insert on ballast.audit_log for each statement execute function ballast.tg_audit_log__insert_from_audit_trigger()');
select ballast.ensure_trigger('ballast.audit_log', '_100_append_only_update',
  'before update on ballast.audit_log for each statement execute function ballast.tg_audit_log__append_only()');
select ballast.ensure_trigger('ballast.audit_log', '_100_append_only_truncate',
  'before truncate on ballast.audit_log for each statement execute function ballast.tg_audit_log__append_only()');
select ballast.ensure_trigger('ballast.audit_log', '_100_append_only_delete',
  'before delete on ballast.audit_log for each statement execute function ballast.tg_audit_log__append_only()');
select ballast.ensure_trigger('ballast.audit_log', '_900_retention_delete',
  'after delete on ballast.audit_log referencing old table as old_table for each statement execute function ballast.tg_audit_log__check_retention()');

---- audit_admin_rule_function
---- The function a value of the setting audit_admin_rule names, checked; null for no rule.
create or replace function ballast.audit_admin_rule_function(rule jsonb)
returns regprocedure as $$
declare
  fn regprocedure;
  returns regtype;
begin
  if rule is null or jsonb_typeof(rule) = 'null' then
    return null;
  end if;
  if jsonb_typeof(rule) <> 'string' or length(rule #>> '{}') not between 1 and 200 then
    raise exception using errcode = '22023',
      message = format('audit_admin_rule must be a JSON string naming a function of yours (schema.name, no arguments), got %s', rule),
      hint = 'e.g. select ballast.configure(''audit_admin_rule'', ''"app_private.is_current_org_admin"'')';
  end if;
  fn := to_regprocedure((rule #>> '{}') || '()');
  if fn is null then
    raise exception using errcode = '42883',
      message = format('audit_admin_rule: no function %s() without arguments', rule #>> '{}'),
      hint = 'Create it first (returns boolean: is the session an admin of its organisation?), then configure it; name it with its schema.';
  end if;
  select p.prorettype::regtype into returns from pg_catalog.pg_proc p where p.oid = fn;
  if returns <> 'boolean'::regtype or (select p.proretset or p.prokind <> 'f' from pg_catalog.pg_proc p where p.oid = fn) then
    raise exception using errcode = '42804',
      message = format('audit_admin_rule: %s must be a function returning one boolean, it returns %s', fn, returns),
      hint = 'It answers "is the session an admin of its organisation?" for the audit log''s read policy.';
  end if;
  if (select p.pronamespace = 'ballast'::regnamespace from pg_catalog.pg_proc p where p.oid = fn) then
    raise exception using errcode = '22023',
      message = format('audit_admin_rule: %s is the kit''s own; name your application''s function', fn);
  end if;
  return fn;
end;
$$ language plpgsql stable;
comment on function ballast.audit_admin_rule_function(jsonb) is
  E'Validates a value of the setting audit_admin_rule (a JSON string naming a function without arguments that returns boolean) and returns that function; null for no rule. 22023, 42883 or 42804 otherwise.';

---- apply_audit_admin_rule
---- Regenerates ballast.audit_admin_rule() from the setting audit_admin_rule (configure() and every apply call it).
-- The audit log's read policy asks it once per statement (an init-plan). Generated, like the claim names
-- (sql/access.sql), so the policy reads no table and calls the application's function directly, as the
-- visitor. Without a rule it returns false: the role claim alone proves no membership, so the kit shows no
-- visitor the log until the application says who its admins are.
create or replace function ballast.apply_audit_admin_rule()
returns void as $$
declare
  fn regprocedure;
  target text;
begin
  begin
    fn := ballast.audit_admin_rule_function(ballast.setting('audit_admin_rule'));
  exception when others then
    fn := null;  -- the function was dropped or changed since configure(): deny, and verify__audit says so
  end;
  if fn is not null then
    select format('%I.%I', n.nspname, p.proname) into target
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace where p.oid = fn;
  end if;
  execute format('create or replace function ballast.audit_admin_rule() returns boolean as %L language sql stable',
                 case when target is null then 'select false' else format('select coalesce(%s(), false)', target) end);
  execute format('comment on function ballast.audit_admin_rule() is %L',
    format('Whether the session is an admin of its organisation, for the audit log''s read policy: %s. Generated from the setting audit_admin_rule by ballast.apply_audit_admin_rule(); change it with ballast.configure(''audit_admin_rule'', ...), never by hand.',
           coalesce(target || '()', 'no rule configured, so no visitor reads the audit log')));
end;
$$ language plpgsql volatile;
comment on function ballast.apply_audit_admin_rule() is
  E'Regenerate ballast.audit_admin_rule() from the setting audit_admin_rule: a call of the application''s function, or false when none is configured (ballast.configure() and every apply of sql/ call it).';

select ballast.apply_audit_admin_rule();
grant execute on function ballast.audit_admin_rule() to ballast_admin;

-- Who reads the log: the owner everything; a ballast_admin whose role claim is admin their organisation's
-- rows, and only when the application's rule (the setting audit_admin_rule) says the session is an admin
-- of it; nobody else. A role claim alone is not enough: without a rule, no visitor reads the log.
select ballast.owner_only_policy('ballast.audit_log');
select ballast.owner_only_policy('ballast.audited_tables');
select ballast.ensure_policy('ballast.audit_log', 'audit_log_org_admin_read', 'select', array['ballast_admin']::name[],
  using_expr => $$org_id = (select ballast.current_org_id()) and (select ballast.current_app_role()) = 'admin' and (select ballast.audit_admin_rule())$$);
grant select on ballast.audit_log to ballast_member, ballast_admin;

---- admin_audit_log
---- What an organisation admin may read of the audit log: their organisation's rows (RLS decides).
select ballast.ensure_view('ballast.admin_audit_log', $view$
  select id, occurred_at, table_name, op, record_id, old_values, new_values,
         case when op = 'UPDATE' then array(select jsonb_object_keys(new_values)) end as changed_columns,
         actor_id, actor_role, org_id, request_id
    from ballast.audit_log
$view$, array['security_invoker=true']);
comment on view ballast.admin_audit_log is
  E'The audit log as an organisation admin sees it: rows of their organisation only (RLS on ballast.audit_log); members see nothing. For an UPDATE, old_values and new_values hold the changed columns before and after, and changed_columns names them; full images: ballast.audit_row_history().';
grant select on ballast.admin_audit_log to ballast_member, ballast_admin;

---- audit_row_history
---- One row's history with full images: each change's whole row before and after, rebuilt from the diffs.
-- The log keeps an UPDATE's changed columns only. Images are rebuilt backwards from the row as it is now
-- (read as the caller, so RLS on the table applies): the row before an UPDATE is the row after it ||
-- old_values; before a DELETE it is old_values. Where there is no current row to start from (the table was
-- truncated or dropped) they are rebuilt forwards from the INSERT: the row after an UPDATE is the row
-- before it || new_values. An image that neither way reaches (history cut by retention on both sides) is
-- null, and partial tells so. Rows the caller may not read (RLS on ballast.audit_log) are not shown.
create or replace function ballast.audit_row_history(tbl regclass, key jsonb)
returns table (id bigint, occurred_at timestamptz, op ballast.audit_op, old_row jsonb, new_row jsonb,
               changed_columns text[], actor_id text, actor_role text, request_id text, partial boolean) as $$
declare
  t record;
  rid uuid;
  missing text[];
  cur jsonb;
  ids bigint[];
  ops ballast.audit_op[];
  olds jsonb[];
  news jsonb[];
  fwd jsonb[] := '{}';
  bwd_new jsonb[] := '{}';
  bwd_old jsonb[] := '{}';
  state jsonb;
  n int;
  i int;
begin
  if tbl is null or key is null then
    raise exception using errcode = '22004', message = format('audit_row_history: tbl and key must not be null, got %s and %s', tbl, key);
  end if;
  select a.table_name, a.pk_columns, a.exclude_columns into t from ballast.audited_tables a where a.table_name = ballast.qualified_name(tbl);
  if t.table_name is null then
    raise exception using errcode = '22023', message = format('audit_row_history: %s is not audited', tbl),
      hint = 'ballast.audited_tables_list() names the audited tables.';
  end if;
  if jsonb_typeof(key) <> 'object' then
    raise exception using errcode = '22023',
      message = format('audit_row_history: key must be a JSON object of the primary key columns %s, got %s', t.pk_columns, left(key::text, 200));
  end if;
  select array_agg(k) into missing from unnest(t.pk_columns) k where not key ? k or jsonb_typeof(key -> k) = 'null';
  if missing is not null then
    raise exception using errcode = '22023',
      message = format('audit_row_history: key %s lacks the primary key column(s) %s of %s', left(key::text, 200), missing, t.table_name);
  end if;
  rid := ballast.audit_record_id(t.table_name, t.pk_columns, key);
  execute format('select to_jsonb(x.*) - $2 from %s x where (%s) = (select %s from jsonb_populate_record(null::%s, $1) r)',
                 tbl, (select string_agg(format('x.%I', k), ', ') from unnest(t.pk_columns) k),
                 (select string_agg(format('r.%I', k), ', ') from unnest(t.pk_columns) k), tbl)
    into cur using key, t.exclude_columns;
  select coalesce(array_agg(a.id order by a.id), '{}'), coalesce(array_agg(a.op order by a.id), '{}'),
         coalesce(array_agg(a.old_values order by a.id), '{}'), coalesce(array_agg(a.new_values order by a.id), '{}')
    into ids, ops, olds, news
    from ballast.audit_log a where a.record_id = rid and a.table_name = t.table_name;
  n := cardinality(ids);
  -- forwards from the oldest entry (an INSERT gives the whole row): fwd[i] is the row after entry i
  for i in 1 .. n loop
    state := case ops[i] when 'INSERT' then news[i] when 'DELETE' then null else state || news[i] end;
    fwd[i] := state;
  end loop;
  -- backwards from the current row: bwd_new[i] and bwd_old[i] are the row after and before entry i
  state := cur;
  for i in reverse n .. 1 loop
    if ops[i] = 'DELETE' then
      state := olds[i];
    end if;
    bwd_new[i] := case when ops[i] = 'DELETE' then null else state end;
    bwd_old[i] := case ops[i] when 'INSERT' then null when 'DELETE' then olds[i] else state || olds[i] end;
    state := bwd_old[i];
  end loop;
  for i in 1 .. n loop
    select a.id, a.occurred_at, a.op, a.actor_id, a.actor_role, a.request_id,
           case when a.op = 'UPDATE' then array(select jsonb_object_keys(a.new_values)) end
      into id, occurred_at, op, actor_id, actor_role, request_id, changed_columns
      from ballast.audit_log a where a.id = ids[i];
    new_row := case when op = 'DELETE' then null else coalesce(bwd_new[i], fwd[i]) end;
    old_row := case when op = 'INSERT' then null when op = 'DELETE' then olds[i] else coalesce(bwd_old[i], case when i > 1 then fwd[i - 1] end) end;
    partial := (op <> 'DELETE' and new_row is null) or (op <> 'INSERT' and old_row is null);
    return next;
  end loop;
end;
$$ language plpgsql stable;
comment on function ballast.audit_row_history(regclass, jsonb) is
  E'One row''s history, oldest first, with full images: old_row and new_row are the whole row (minus excluded columns) before and after each change, rebuilt from the stored diffs and the current row. key: the primary key as JSON, e.g. ''{"id": 42}''. 22004 for null, 22023 for a table that is not audited or a key without its primary key columns. Reads as the caller (RLS applies).';

---- audited_tables_list
---- The audited tables' names, e.g. the admin page's filter (audited_tables itself is owner-only).
create or replace function ballast.audited_tables_list()
returns setof text as $$
  select table_name from ballast.audited_tables order by 1
$$ language sql stable security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.audited_tables_list() is
  E'The names (schema.table) of the tables with audit triggers. SECURITY DEFINER: ballast.audited_tables is owner-only; the names alone reveal no rows.';
revoke all on function ballast.audited_tables_list() from public;
grant execute on function ballast.audited_tables_list() to ballast_member, ballast_admin;

---- verify__audit
---- Every audited table still has its four audit triggers; the audit log is still append-only.
create or replace function ballast.verify__audit()
returns table (check_name text, ok boolean, detail text) as $$
  select 'audit triggers ' || a.table_name,
         to_regclass(a.table_name) is not null and count(t.tgname) = 4,
         case when to_regclass(a.table_name) is null then format('%s no longer exists: select ballast.disable_audit(...) was not run; delete from ballast.audited_tables where table_name = %L', a.table_name, a.table_name)
              when count(t.tgname) = 4 then 'insert, update, delete, truncate triggers present'
              else format('%s of 4 audit triggers present: run select ballast.enable_audit(%L)', count(t.tgname), a.table_name) end
    from ballast.audited_tables a
    left join pg_trigger t on t.tgrelid = to_regclass(a.table_name) and t.tgname like '\_900\_audit\_%' and t.tgenabled <> 'D'
   group by a.table_name
  union all
  select 'audit log append-only', count(*) = 5,
         format('%s of 5 guard triggers enabled on ballast.audit_log (_100_append_only_insert/_update/_truncate/_delete, _900_retention_delete)', count(*))
    from pg_trigger t
   where t.tgrelid = 'ballast.audit_log'::regclass and t.tgenabled <> 'D'
     and t.tgname in ('_100_append_only_insert', '_100_append_only_update', '_100_append_only_truncate', '_100_append_only_delete', '_900_retention_delete')
$$ language sql stable;
comment on function ballast.verify__audit() is
  E'Checks for verify_migration_success(): audit triggers on every table in ballast.audited_tables, and the audit log''s append-only triggers.';
