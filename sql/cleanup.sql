-- Batched cleanup with retention policies (capability: cleanup).
-- A policy says: delete rows of <tbl> whose <time_column> is older than now() - <retain> (and that
-- satisfy <extra_condition>), <batch_size> rows per transaction, on the pg_cron <schedule>. run_cleanup()
-- is a procedure that commits after every batch, picks rows with FOR UPDATE SKIP LOCKED (it never waits
-- for a writer's row lock), runs one pass per policy at a time across sessions (a session-level advisory
-- lock per table) and stops when nothing is left or max_runtime is reached. Every pass is recorded in
-- ballast.cleanup_runs; ballast.cleanup_status is the operator's view.
-- The tables live in the committed migration; this file is applied after every migrate and idempotent.
-- It comes last in sql/ORDER so the built-in policies can see the tables of the other capabilities.

select ballast.owner_only_policy('ballast.cleanup_policies');
select ballast.owner_only_policy('ballast.cleanup_runs');

---- cron_field_values
---- The sorted values one field of a cron schedule stands for (null when the field is not valid).
create or replace function ballast.cron_field_values(field text, lo int, hi int, names text[] default null)
returns int[] as $$
declare
  part text;
  m text[];
  a int;
  b int;
  step int;
  vals int[] := '{}';
begin
  if hi::bigint - lo::bigint > 1000 then  -- cron's widest field is 0-59: a wider range is a caller's mistake, not a schedule
    raise exception using errcode = '22023',
      message = format('cron_field_values: the range %s..%s spans more than 1000 values', lo, hi),
      hint = 'Pass the bounds of a cron field, e.g. 0 and 59 for minutes.';
  end if;
  if field is null or field = '' then
    return null;
  end if;
  foreach part in array string_to_array(lower(field), ',') loop
    -- '*', 'n', 'n-m', each optionally '/step'; names (jan, mon) where the field has them
    m := regexp_match(part, '^(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/([0-9]+))?$');
    if m is null or (m[1] = '*' and m[2] is not null) then
      return null;
    end if;
    if m[1] = '*' then
      a := lo;
      b := hi;
    else
      a := case when m[1] ~ '^[0-9]+$' and length(m[1]) <= 4 then m[1]::int
                else lo - 1 + array_position(names, m[1]) end;
      b := case when m[2] is null then a
                when m[2] ~ '^[0-9]+$' and length(m[2]) <= 4 then m[2]::int
                else lo - 1 + array_position(names, m[2]) end;
      if m[2] is null and m[3] is not null then
        return null; -- '5/10': a step needs a range or '*'
      end if;
    end if;
    step := coalesce(nullif(m[3], '')::int, 1);
    if a is null or b is null or a < lo or b > hi or a > b or step < 1 then
      return null;
    end if;
    vals := vals || array(select generate_series(a, b, step));
  end loop;
  return array(select distinct v from unnest(vals) v order by v);
end;
$$ language plpgsql immutable parallel safe;
comment on function ballast.cron_field_values(text, int, int, text[]) is
  E'The sorted values one field of a pg_cron schedule stands for, or null when the field is not valid. Raises 22023 when hi - lo > 1000.';

---- cron_next
---- The first time after `after` at which a pg_cron 1.4 schedule fires (pg_cron schedules in UTC).
create or replace function ballast.cron_next(schedule text, after timestamptz)
returns timestamptz as $$
declare
  s text := lower(btrim(schedule));
  f text[];
  mins int[];
  hrs int[];
  doms int[];
  mons int[];
  dows int[];
  dom_star boolean;
  dow_star boolean;
  t timestamp;
  d date;
  h int;
  mi int;
  day_ok boolean;
begin
  if schedule is null or after is null then
    return null;
  end if;
  s := case s
         when '@yearly' then '0 0 1 1 *' when '@annually' then '0 0 1 1 *'
         when '@monthly' then '0 0 1 * *' when '@weekly' then '0 0 * * 0'
         when '@daily' then '0 0 * * *' when '@midnight' then '0 0 * * *'
         when '@hourly' then '0 * * * *' else s end;
  f := regexp_split_to_array(s, '\s+');
  if array_length(f, 1) is distinct from 5 then
    raise exception using errcode = '22023',
      message = format('schedule %L is not a pg_cron schedule: it needs 5 fields (minute hour day-of-month month day-of-week), got %s',
                       schedule, coalesce(array_length(f, 1), 0)),
      hint = 'For example ''17 * * * *'' (hourly at :17) or ''@daily''. pg_cron 1.4 has no seconds and no @reboot for cleanup.';
  end if;
  mins := ballast.cron_field_values(f[1], 0, 59);
  hrs := ballast.cron_field_values(f[2], 0, 23);
  doms := ballast.cron_field_values(f[3], 1, 31);
  mons := ballast.cron_field_values(f[4], 1, 12, array['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']);
  dows := ballast.cron_field_values(f[5], 0, 7, array['sun','mon','tue','wed','thu','fri','sat']);
  if mins is null or hrs is null or doms is null or mons is null or dows is null then
    raise exception using errcode = '22023',
      message = format('schedule %L is not a pg_cron schedule: field %s (%L) is not valid', schedule,
        case when mins is null then 1 when hrs is null then 2 when doms is null then 3 when mons is null then 4 else 5 end,
        f[case when mins is null then 1 when hrs is null then 2 when doms is null then 3 when mons is null then 4 else 5 end]),
      hint = 'Each field is *, n, n-m, */k or n-m/k, or a comma list of those; minute 0-59, hour 0-23, day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat.';
  end if;
  if 7 = any (dows) then
    dows := dows || 0; -- 7 is Sunday too
  end if;
  -- vixie cron: when day-of-month or day-of-week starts with '*', both must match; otherwise either
  dom_star := f[3] like '*%';
  dow_star := f[5] like '*%';
  t := date_trunc('minute', after at time zone 'UTC') + interval '1 minute';
  d := t::date;
  for i in 0 .. 366 * 8 loop -- '0 0 29 2 *' may wait up to 8 years
    day_ok := case when dom_star or dow_star
                   then extract(day from d)::int = any (doms) and extract(dow from d)::int = any (dows)
                   else extract(day from d)::int = any (doms) or extract(dow from d)::int = any (dows) end;
    if extract(month from d)::int = any (mons) and day_ok then
      foreach h in array hrs loop
        continue when d = t::date and h < extract(hour from t);
        foreach mi in array mins loop
          continue when d = t::date and h = extract(hour from t) and mi < extract(minute from t);
          return (d + make_time(h, mi, 0)) at time zone 'UTC';
        end loop;
      end loop;
    end if;
    d := d + 1;
  end loop;
  return null; -- never fires (e.g. '0 0 31 2 *')
end;
$$ language plpgsql immutable parallel safe;
comment on function ballast.cron_next(text, timestamptz) is
  E'The first time after the given one at which a pg_cron 1.4 schedule fires (UTC, as pg_cron 1.4 schedules); raises 22023 for a schedule pg_cron would not take.';

---- cleanup_expression_problem
---- Why a text is not a single SQL expression that can be wrapped in parentheses (null when it is).
create or replace function ballast.cleanup_expression_problem(expr text)
returns text as $$
declare
  n int := length(expr);
  i int := 1;
  c text;
  nxt text;
  prev text;
  depth int := 0;
  state text := 'code'; -- code | str (standard string) | estr (backslash escapes) | ident ("quoted")
  backslashes boolean := current_setting('standard_conforming_strings') = 'off';
begin
  if expr is null then
    return null;
  end if;
  if btrim(expr) = '' then
    return 'is empty (pass null for no extra condition)';
  end if;
  if n > 2000 then
    return format('is %s characters long (at most 2000)', n);
  end if;
  if position(';' in expr) > 0 then
    return 'contains a semicolon (one expression, not statements; a ; inside a string is refused too)';
  end if;
  while i <= n loop
    c := substr(expr, i, 1);
    nxt := substr(expr, i + 1, 1);
    if state = 'code' then
      if c = '-' and nxt = '-' then
        return 'contains a comment (--)';
      elsif c = '/' and nxt = '*' then
        return 'contains a comment (/*)';
      elsif c = '$' then
        return 'contains $ (no dollar quoting or parameters: write strings as ''...'')';
      elsif c = '(' then
        depth := depth + 1;
      elsif c = ')' then
        depth := depth - 1;
        if depth < 0 then
          return format('closes a parenthesis it did not open (at character %s)', i);
        end if;
      elsif c = '''' then
        -- E'...' when the e starts a token (the lexer takes the longest match: date'x' is not one)
        prev := substr(expr, i - 1, 1);
        state := case when backslashes then 'estr'
                      when i > 1 and lower(prev) = 'e'
                           and (i = 2 or not (substr(expr, i - 2, 1) ~ '[A-Za-z0-9_$]' or ascii(substr(expr, i - 2, 1)) > 127))
                      then 'estr' else 'str' end;
      elsif c = '"' then
        state := 'ident';
      end if;
    elsif state in ('str', 'estr') then
      if state = 'estr' and c = '\' then
        i := i + 1; -- the escaped character
      elsif c = '''' then
        if nxt = '''' then
          i := i + 1;
        else
          state := 'code';
        end if;
      end if;
    elsif state = 'ident' then
      if c = '"' then
        if nxt = '"' then
          i := i + 1;
        else
          state := 'code';
        end if;
      end if;
    end if;
    i := i + 1;
  end loop;
  if state <> 'code' then
    return 'has an unterminated quote';
  end if;
  if depth <> 0 then
    return format('has %s unclosed parenthesis', depth);
  end if;
  return null;
end;
$$ language plpgsql stable parallel safe;
comment on function ballast.cleanup_expression_problem(text) is
  E'Why a text cannot be a cleanup extra_condition (a semicolon, a comment, $, unbalanced parentheses or quotes), or null when its shape is fine.';

---- cleanup_time_column_type
---- The base type of a column if it is a timestamptz, timestamp or date (null otherwise).
create or replace function ballast.cleanup_time_column_type(tbl regclass, col name)
returns regtype as $$
  select base.oid::regtype
  from pg_attribute a
  join pg_type t on t.oid = a.atttypid
  join pg_type base on base.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
  where a.attrelid = tbl and a.attname = col and a.attnum > 0 and not a.attisdropped
    and base.oid in ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
$$ language sql stable;
comment on function ballast.cleanup_time_column_type(regclass, name) is
  E'The type of a column when cleanup can use it as a time column (timestamptz, timestamp, date, or a domain over one); null otherwise.';

---- cleanup_index
---- The index cleanup uses for a time column: valid, btree (or brin), leading with it, not partial
---- unless its predicate is `<col> IS NOT NULL` (which every `<col> < cutoff` implies).
create or replace function ballast.cleanup_index(tbl regclass, col name)
returns regclass as $$
  select i.indexrelid::regclass
  from pg_index i
  join pg_class ic on ic.oid = i.indexrelid
  join pg_am am on am.oid = ic.relam
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
  where i.indrelid = tbl and a.attname = col and i.indisvalid and i.indisready and am.amname in ('btree', 'brin')
    and (i.indpred is null or pg_get_expr(i.indpred, i.indrelid) = format('(%s IS NOT NULL)', quote_ident(col)))
  order by am.amname = 'btree' desc, i.indpred is null desc, i.indnatts, ic.relname
  limit 1
$$ language sql stable;
comment on function ballast.cleanup_index(regclass, name) is
  E'The index that serves cleanup batches on (tbl, col): valid btree or brin leading with col, non-partial or WHERE col IS NOT NULL; null when there is none.';

---- cleanup_index_problem
---- What stops cleanup from finding batches of tbl by col through an index (null when nothing does).
create or replace function ballast.cleanup_index_problem(tbl regclass, col name)
returns text as $$
begin
  -- a null tbl is answered (it reads as a table that no longer exists); a null column has no answer
  if col is null then
    raise exception using errcode = '22004', message = format('cleanup_index_problem: col must not be null (table %s)', tbl),
      hint = 'Pass the time column of the cleanup policy, e.g. ''created_at''.';
  end if;
  return case
    when not exists (select 1 from pg_class c where c.oid = tbl) then
      format('table with oid %s no longer exists: select ballast.drop_cleanup_policy(%s)', tbl::oid, tbl::oid)
    when ballast.cleanup_time_column_type(tbl, col) is null then
      format('%s has no timestamptz, timestamp or date column %I', ballast.qualified_name(tbl), col)
    when ballast.cleanup_index(tbl, col) is null then
      format('no index on %s leads with %I: create index concurrently on %s (%I);',
             ballast.qualified_name(tbl), col, ballast.qualified_name(tbl), col)
  end;
end;
$$ language plpgsql stable;
comment on function ballast.cleanup_index_problem(regclass, name) is
  E'Null when cleanup can find batches of the table through an index on the time column; otherwise what is wrong and the statement that fixes it. Raises 22004 for a null column.';

---- check_cleanup_policy
---- Refuses a policy that cleanup could not run safely; each problem has its own SQLSTATE.
create or replace function ballast.check_cleanup_policy(p ballast.cleanup_policies)
returns void as $$
declare
  kind "char";
  runner name := (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner
                  where c.oid = 'ballast.cleanup_policies'::regclass);
  problem text;
  st text;
  msg text;
begin
  if p.tbl is null then
    raise exception using errcode = '22004', message = 'cleanup policy: tbl must not be null';
  end if;
  select c.relkind into kind from pg_class c where c.oid = p.tbl;
  if kind is null then
    raise exception using errcode = '42P01', message = format('cleanup policy: no table with oid %s', p.tbl::oid);
  elsif kind = 'p' then
    raise exception using errcode = '42809',
      message = format('cleanup policy: %s is partitioned; deleting rows from it is the slow way', p.tbl),
      hint = 'Drop or detach old partitions instead, or add a policy on each partition.';
  elsif kind <> 'r' then
    raise exception using errcode = '42809',
      message = format('cleanup policy: %s is not a table (relkind %s); cleanup deletes from ordinary tables only', p.tbl, kind);
  end if;
  if p.time_column is null then
    raise exception using errcode = '22004', message = 'cleanup policy: time_column must not be null';
  end if;
  if not exists (select 1 from pg_attribute a where a.attrelid = p.tbl and a.attname = p.time_column
                 and a.attnum > 0 and not a.attisdropped) then
    raise exception using errcode = '42703',
      message = format('cleanup policy: %s has no column %I', p.tbl, p.time_column),
      hint = format('Columns of type timestamptz, timestamp or date in %s: %s', p.tbl, coalesce((
        select string_agg(quote_ident(a.attname), ', ' order by a.attnum) from pg_attribute a
        where a.attrelid = p.tbl and a.attnum > 0 and not a.attisdropped
          and ballast.cleanup_time_column_type(p.tbl, a.attname) is not null), 'none'));
  end if;
  if ballast.cleanup_time_column_type(p.tbl, p.time_column) is null then
    raise exception using errcode = '42804',
      message = format('cleanup policy: %s.%I is %s; the time column must be timestamptz, timestamp or date', p.tbl, p.time_column,
        (select format_type(a.atttypid, a.atttypmod) from pg_attribute a where a.attrelid = p.tbl and a.attname = p.time_column));
  end if;
  if p.retain is null or p.retain <= interval '0' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: retain must be a positive interval, got %s', coalesce(p.retain::text, 'null')),
      hint = 'Rows with time_column < now() - retain are deleted; for an expires_at column, retain is the grace period after expiry, e.g. ''1 hour''.';
  end if;
  if p.batch_size is null or p.batch_size < 1 or p.batch_size > 100000 then
    raise exception using errcode = '22023',
      message = format('cleanup policy: batch_size must be 1..100000 rows, got %s', coalesce(p.batch_size::text, 'null')),
      hint = 'About 1000 keeps each transaction short; bigger batches hold row locks and WAL longer.';
  end if;
  if p.max_runtime is null or p.max_runtime <= interval '0' or p.max_runtime > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: max_runtime must be more than 0 and at most 1 day, got %s', coalesce(p.max_runtime::text, 'null'));
  end if;
  if p.batch_pause is null or p.batch_pause < interval '0' or p.batch_pause > interval '1 minute' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: batch_pause must be 0..1 minute, got %s', coalesce(p.batch_pause::text, 'null'));
  end if;
  if p.schedule is null then
    raise exception using errcode = '22004', message = 'cleanup policy: schedule must not be null';
  end if;
  if ballast.cron_next(p.schedule, now()) is null then -- raises 22023 itself when the syntax is wrong
    raise exception using errcode = '22023', message = format('cleanup policy: schedule %L never fires', p.schedule);
  end if;
  -- extra_condition: one boolean expression on the table. Its shape first (so it cannot close the
  -- parentheses it is wrapped in), then the parser and planner: EXPLAIN plans without running it.
  problem := ballast.cleanup_expression_problem(p.extra_condition);
  if problem is not null then
    raise exception using errcode = '42601',
      message = format('cleanup policy: extra_condition %L %s', p.extra_condition, problem),
      hint = 'extra_condition is one boolean SQL expression on the table''s columns, e.g. status = ''done''; it is ANDed with the time filter.';
  end if;
  if p.extra_condition is not null then
    begin
      execute format('explain (costs off) select 1 from %s where (%s) limit 0', p.tbl, p.extra_condition);
    exception when others then
      get stacked diagnostics st = returned_sqlstate, msg = message_text;
      raise exception using errcode = st,
        message = format('cleanup policy: extra_condition %L is not a boolean expression on %s: %s', p.extra_condition, p.tbl, msg),
        hint = 'It is evaluated with search_path = pg_catalog: qualify your own functions and operators.';
    end;
  end if;
  if ballast.cleanup_index(p.tbl, p.time_column) is null then
    raise exception using errcode = '55000',
      message = format('cleanup policy: no index on %s leads with %I, so every batch would scan the whole table', p.tbl, p.time_column),
      hint = format('create index concurrently on %s (%I);', p.tbl, p.time_column);
  end if;
  -- the pg_cron job runs as the owner of the ballast tables: it must be allowed to lock and delete
  if not has_table_privilege(runner, p.tbl, 'DELETE') or not has_any_column_privilege(runner, p.tbl, 'UPDATE') then
    raise exception using errcode = '42501',
      message = format('cleanup policy: %s may not delete from %s or lock its rows (FOR UPDATE needs UPDATE on a column)', runner, p.tbl),
      hint = format('grant delete, update (%I) on %s to %I;', p.time_column, p.tbl, runner);
  end if;
  -- row level security that hides rows from the job's role would make every run delete nothing, quietly:
  -- FOR UPDATE needs SELECT and UPDATE policies to pass, DELETE a DELETE policy
  select string_agg(cmd.name, ', ' order by cmd.name) into problem
  from pg_class c
  cross join (values ('r', 'select'), ('w', 'update'), ('d', 'delete')) as cmd(code, name)
  join pg_roles r on r.rolname = runner
  where c.oid = p.tbl and c.relrowsecurity and (c.relforcerowsecurity or c.relowner <> r.oid)
    and not r.rolsuper and not r.rolbypassrls
    and not exists (select 1 from pg_policy pol
                    where pol.polrelid = c.oid and pol.polpermissive and pol.polcmd in (cmd.code, '*')
                      and exists (select 1 from unnest(pol.polroles) pr where pr = 0 or pg_has_role(r.oid, pr, 'member')));
  if problem is not null then
    raise exception using errcode = '42501',
      message = format('cleanup policy: row level security on %s gives %s no %s policy, so cleanup would find nothing to delete', p.tbl, runner, problem),
      hint = format('For a kit table: select ballast.owner_only_policy(%L); otherwise: create policy cleanup on %s for all to %I using (true);',
                    p.tbl::text, p.tbl, runner);
  end if;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp; -- volatile: EXPLAIN is a utility statement
comment on function ballast.check_cleanup_policy(ballast.cleanup_policies) is
  E'Raises when a cleanup policy cannot run safely: not a plain table (42809), no such column (42703), not a time column or extra_condition not boolean (42804), retain/batch_size/schedule out of range (22023), extra_condition not one expression (42601), no index leading with the time column (55000), no privilege or no row level security policy for the job''s role (42501).';

---- tg_cleanup_policies__validate
---- Every insert and update of a policy is checked, whoever writes it (add_cleanup_policy or UPDATE).
create or replace function ballast.tg_cleanup_policies__validate()
returns trigger as $$
begin
  perform ballast.check_cleanup_policy(NEW);
  if TG_OP = 'UPDATE' then
    NEW.updated_at := now();
  end if;
  return NEW;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_cleanup_policies__validate() is
  E'Trigger: validates a cleanup policy before it is stored and stamps updated_at.';

---- cleanup_job_name
---- The pg_cron job name of a policy (pg_cron names are at most 63 bytes).
create or replace function ballast.cleanup_job_name(tbl regclass)
returns text as $$
  select case when octet_length('ballast cleanup ' || q) <= 63 then 'ballast cleanup ' || q
              else 'ballast cleanup ' || left(md5(q), 16) end
  from (select ballast.qualified_name(tbl) as q) x
$$ language sql stable;
comment on function ballast.cleanup_job_name(regclass) is
  E'Name of the pg_cron job that runs a cleanup policy: ''ballast cleanup <schema>.<table>''.';

---- cleanup_job_command
---- The SQL the pg_cron job of a policy runs: one CALL, so the procedure may commit per batch.
create or replace function ballast.cleanup_job_command(p ballast.cleanup_policies)
returns text as $$
  select format('call ballast.run_cleanup(%L, %L)', p.max_runtime, ballast.qualified_name(p.tbl))
$$ language sql stable;
comment on function ballast.cleanup_job_command(ballast.cleanup_policies) is
  E'The command of a cleanup policy''s pg_cron job: call ballast.run_cleanup(<max_runtime>, ''<table>'').';

---- cleanup_job_id
---- The pg_cron job id of a policy's job, or null (no job, or no pg_cron in this database).
create or replace function ballast.cleanup_job_id(tbl regclass)
returns bigint as $$
declare
  id bigint;
begin
  if to_regnamespace('cron') is null then
    return null;
  end if;
  execute 'select jobid from cron.job where jobname = $1 and username = $2'
    into id
    using ballast.cleanup_job_name(tbl),
          (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = 'ballast.cleanup_policies'::regclass);
  return id;
end;
$$ language plpgsql stable;
comment on function ballast.cleanup_job_id(regclass) is
  E'Id of the pg_cron job of a cleanup policy, null when it has none or pg_cron is not in this database.';

---- cleanup_sync_schedules
---- Makes pg_cron's jobs match the policies: one job per enabled policy, none for anything else.
create or replace function ballast.cleanup_sync_schedules()
returns void as $$
declare
  j record;
begin
  if to_regnamespace('cron') is null then
    return; -- the shadow database, or a server without pg_cron in this database
  end if;
  for j in
    select c.jobname from cron.job c
    where c.username = current_user and c.jobname like 'ballast cleanup %'
      and c.jobname not in (select ballast.cleanup_job_name(p.tbl) from ballast.cleanup_policies p
                            where p.enabled and exists (select 1 from pg_class k where k.oid = p.tbl))
  loop
    perform ballast.unschedule_job(j.jobname);
  end loop;
  for j in
    select ballast.cleanup_job_name(p.tbl) as jobname, p.schedule, ballast.cleanup_job_command(p) as command
    from ballast.cleanup_policies p
    where p.enabled and exists (select 1 from pg_class k where k.oid = p.tbl)
  loop
    if not exists (select 1 from cron.job c where c.jobname = j.jobname and c.username = current_user
                   and c.schedule = j.schedule and c.command = j.command and c.database = current_database()) then
      perform cron.schedule(j.jobname, j.schedule, j.command);
    end if;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.cleanup_sync_schedules() is
  E'Schedules one pg_cron job per enabled cleanup policy (as the owner, so jobs run as the owner) and unschedules the rest; a no-op without pg_cron.';

---- tg_cleanup_policies__schedule
---- After any change to the policies, pg_cron's jobs follow.
create or replace function ballast.tg_cleanup_policies__schedule()
returns trigger as $$
begin
  perform ballast.cleanup_sync_schedules();
  return null;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_cleanup_policies__schedule() is
  E'Trigger: keeps pg_cron jobs in sync with ballast.cleanup_policies after every insert, update or delete.';

-- ensure_trigger (sql/kit.sql): left alone when unchanged; events in pg_get_triggerdef's order
select ballast.ensure_trigger('ballast.cleanup_policies', '_100_validate',
  'before insert or update on ballast.cleanup_policies for each row execute function ballast.tg_cleanup_policies__validate()');
select ballast.ensure_trigger('ballast.cleanup_policies', '_500_schedule',
  'after insert or delete or update on ballast.cleanup_policies for each statement execute function ballast.tg_cleanup_policies__schedule()');

---- add_cleanup_policy
---- Creates or replaces the retention policy of a table (validated; its pg_cron job follows).
create or replace function ballast.add_cleanup_policy(
  tbl regclass,
  time_column name,
  retain interval,
  batch_size int default 1000,
  schedule text default '17 * * * *',
  extra_condition text default null,
  max_runtime interval default '50 seconds',
  batch_pause interval default '60 milliseconds'
) returns ballast.cleanup_policies as $$
  insert into ballast.cleanup_policies as p (tbl, time_column, retain, batch_size, schedule, extra_condition, max_runtime, batch_pause)
  values (tbl, time_column, retain, batch_size, schedule, extra_condition, max_runtime, batch_pause)
  on conflict (tbl) do update set
    time_column = excluded.time_column, retain = excluded.retain, batch_size = excluded.batch_size,
    schedule = excluded.schedule, extra_condition = excluded.extra_condition,
    max_runtime = excluded.max_runtime, batch_pause = excluded.batch_pause, enabled = true
  returning p.*
$$ language sql volatile;
comment on function ballast.add_cleanup_policy(regclass, name, interval, int, text, text, interval, interval) is
  E'Delete rows of tbl whose time_column is older than now() - retain (and that satisfy extra_condition), batch_size rows per transaction, on the pg_cron schedule (UTC). Refuses (with the create index that fixes it) when no index leads with time_column, and refuses retain <= 0, batch_size <= 0, a bad schedule or an extra_condition that is not one boolean expression on tbl. Calling it again replaces the policy.';

---- drop_cleanup_policy
---- Removes the retention policy of a table and its pg_cron job; false when there was none.
create or replace function ballast.drop_cleanup_policy(tbl regclass)
returns boolean as $$
declare
  found_one boolean;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'drop_cleanup_policy: tbl must not be null';
  end if;
  delete from ballast.cleanup_policies p where p.tbl = drop_cleanup_policy.tbl;
  get diagnostics found_one = row_count;
  return found_one;
end;
$$ language plpgsql volatile;
comment on function ballast.drop_cleanup_policy(regclass) is
  E'Remove the cleanup policy of a table and unschedule its pg_cron job. Returns false when the table had no policy. Built-in policies come back on the next migrate: switch them off with update ballast.cleanup_policies set enabled = false instead.';

---- cleanup_lock_key
---- The advisory lock that lets one session at a time clean a table: (1650551916 = 'ball', table oid).
create or replace function ballast.cleanup_lock_key(tbl regclass)
returns int as $$
  select (tbl::oid::bigint)::bit(32)::int
$$ language sql immutable parallel safe;
comment on function ballast.cleanup_lock_key(regclass) is
  E'Second key of the advisory lock run_cleanup() holds while it cleans a table (first key 1650551916); in pg_locks: classid 1650551916, objid = the table''s oid.';

---- cleanup_batch
---- Deletes one batch of a policy's rows older than the cutoff; never waits for a row lock.
create or replace function ballast.cleanup_batch(tbl regclass, cutoff timestamptz default null)
returns int as $$
declare
  p ballast.cleanup_policies;
  filter text;
  ord text := '';
  n int;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_batch.tbl;
  if not found then
    raise exception using errcode = '22023', message = format('cleanup_batch: %s has no cleanup policy', tbl),
      hint = 'select ballast.add_cleanup_policy(...) first.';
  end if;
  cutoff := coalesce(cutoff, now() - p.retain);
  if cutoff > now() - p.retain then
    raise exception using errcode = '22023',
      message = format('cleanup_batch: cutoff %s is inside the retention of %s (%s)', cutoff, tbl, p.retain);
  end if;
  -- the contract with capabilities that protect their tables (the audit log's append-only trigger):
  -- a DELETE from the cleanup path says so, for this transaction (run_cleanup() commits right after;
  -- left set until then so deferred triggers see it too)
  perform set_config('ballast.cleanup_table', ballast.qualified_name(p.tbl), true);
  filter := format('%I < $1', p.time_column) || coalesce(' and (' || p.extra_condition || ')', '');
  if exists (select 1 from pg_class ic join pg_am am on am.oid = ic.relam
             where ic.oid = ballast.cleanup_index(p.tbl, p.time_column) and am.amname = 'btree') then
    ord := format(' order by %I', p.time_column); -- oldest first, straight down the index
  end if;
  -- ctid = any(array(...)) is a TID scan; the filter is checked again on the locked row versions
  execute format('delete from %1$s where ctid = any (array(select ctid from %1$s where %2$s%3$s limit $2 for update skip locked)) and %2$s',
                 p.tbl, filter, ord)
    using cutoff, p.batch_size;
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp set lock_timeout = '5s';
comment on function ballast.cleanup_batch(regclass, timestamptz) is
  E'Delete one batch (batch_size rows) of the table''s rows past retention (time_column < cutoff, default now() - retain, never later) that satisfy extra_condition, skipping rows other transactions hold locked. Sets ballast.cleanup_table for the transaction. Returns the rows deleted.';

---- cleanup_may_delete
---- For tables that refuse deletes (the audit log): is this DELETE the cleanup path, of a row past retention?
create or replace function ballast.cleanup_may_delete(tbl regclass, row_time timestamptz)
returns boolean as $$
  select coalesce(current_setting('ballast.cleanup_table', true) = ballast.qualified_name(tbl)
                  and exists (select 1 from ballast.cleanup_policies p
                              where p.tbl = cleanup_may_delete.tbl and row_time < now() - p.retain), false)
$$ language sql stable;
comment on function ballast.cleanup_may_delete(regclass, timestamptz) is
  E'True when the current transaction is run_cleanup() deleting from tbl (ballast.cleanup_table is set to it) and row_time is past the retain of tbl''s policy. For append-only triggers: if not ballast.cleanup_may_delete(TG_RELID::regclass, OLD.<time column>) then raise. A cooperative marker, not a privilege: whoever may DELETE could set it too.';

---- run_cleanup
---- Runs the cleanup policies (or one): a transaction per batch, until done or max_runtime.
create or replace procedure ballast.run_cleanup(max_runtime interval default '50 seconds', "only" regclass default null)
as $$
declare
  deadline timestamptz;
  todo regclass[];
  t regclass;
  p ballast.cleanup_policies;
  run_id bigint;
  cutoff timestamptz;
  n int;
  stop text;
  err text;
  errstate text;
  first boolean;
begin
  if max_runtime is null or max_runtime <= interval '0' or max_runtime > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('run_cleanup: max_runtime must be more than 0 and at most 1 day, got %s', coalesce(max_runtime::text, 'null'));
  end if;
  if "only" is not null and not exists (select 1 from ballast.cleanup_policies c where c.tbl = "only") then
    raise exception using errcode = '22023', message = format('run_cleanup: %s has no cleanup policy', "only"),
      hint = 'select tbl from ballast.cleanup_policies lists the tables that have one.';
  end if;
  -- Fails here ("invalid transaction termination") when called inside a transaction block, before
  -- any advisory lock is taken: a session-level lock would outlive the rolled-back transaction.
  commit;
  deadline := clock_timestamp() + max_runtime;
  -- least recently run first, so a short max_runtime is shared fairly between policies
  select array_agg(c.tbl order by (select max(r.started_at) from ballast.cleanup_runs r where r.policy = c.tbl) nulls first, c.tbl::oid)
    into todo
  from ballast.cleanup_policies c
  where ("only" is null and c.enabled) or c.tbl = "only";
  commit;
  foreach t in array coalesce(todo, '{}') loop
    exit when clock_timestamp() >= deadline;
    if not exists (select 1 from pg_class k where k.oid = t) then
      raise notice 'run_cleanup: the table of policy % no longer exists; drop the policy', t::oid;
      continue;
    end if;
    -- the lock is per session and reentrant: a lock this session kept from an interrupted call is reused
    if not exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.pid = pg_backend_pid()
                   and l.classid = 1650551916 and l.objid = t::oid and l.objsubid = 2)
       and not pg_try_advisory_lock(1650551916, ballast.cleanup_lock_key(t)) then
      raise notice 'run_cleanup: % skipped, another session is cleaning it', t;
      continue;
    end if;
    select * into p from ballast.cleanup_policies c where c.tbl = t;
    if not found then -- dropped meanwhile
      perform pg_advisory_unlock(1650551916, ballast.cleanup_lock_key(t));
      continue;
    end if;
    -- a run still open here was interrupted (we hold the lock, so nobody is running it)
    update ballast.cleanup_runs r set finished_at = clock_timestamp(), stopped_by = 'error',
      error = 'interrupted: cancelled, or its session ended'
    where r.policy = t and r.finished_at is null;
    cutoff := now() - p.retain;
    insert into ballast.cleanup_runs (policy, table_name, started_at, cutoff)
    values (t, ballast.qualified_name(t), clock_timestamp(), cutoff)
    returning id into run_id;
    commit;
    stop := null;
    err := null;
    errstate := null;
    first := true;
    loop
      -- Everything that can fail or be cancelled runs inside an exception block, so the run is always
      -- closed and the lock released; COMMIT may not run inside one, so it follows each block.
      if not first and p.batch_pause > interval '0' and clock_timestamp() < deadline then
        begin
          perform pg_sleep(extract(epoch from p.batch_pause)); -- its own short transaction: no locks held
        exception when query_canceled or others then
          get stacked diagnostics err = message_text, errstate = returned_sqlstate;
          stop := 'error';
        end;
        commit;
        exit when stop is not null;
      end if;
      begin
        if not first and clock_timestamp() >= deadline then
          stop := 'max_runtime';
        else
          n := ballast.cleanup_batch(t, cutoff);
          if n > 0 then
            update ballast.cleanup_runs r set rows_deleted = r.rows_deleted + n, batches = r.batches + 1 where r.id = run_id;
          end if;
          if n < p.batch_size then
            stop := 'done';
          end if;
        end if;
      exception when query_canceled or others then
        get stacked diagnostics err = message_text, errstate = returned_sqlstate;
        stop := 'error';
      end;
      commit; -- one transaction per batch: row locks and WAL never pile up
      first := false;
      exit when stop is not null;
    end loop;
    update ballast.cleanup_runs r set finished_at = clock_timestamp(), stopped_by = stop,
      error = case when err is not null then errstate || ': ' || err end
    where r.id = run_id;
    commit;
    perform pg_advisory_unlock(1650551916, ballast.cleanup_lock_key(t));
    if errstate = '57014' then -- cancelled: recorded, now stop as asked
      raise exception using errcode = '57014', message = err;
    end if;
  end loop;
end;
$$ language plpgsql;
comment on procedure ballast.run_cleanup(interval, regclass) is
  E'Run the enabled cleanup policies (or only the named table''s): batches picked with FOR UPDATE SKIP LOCKED, one transaction each, until nothing is left or max_runtime is reached; a policy another session is running is skipped. Each pass is recorded in ballast.cleanup_runs. Call it at top level (not inside BEGIN): call ballast.run_cleanup(''50 seconds'') or call ballast.run_cleanup(''10 minutes'', ''my_schema.my_table'').';

---- cleanup_rows_behind
---- A policy's rows past retention: counted up to 10,000, the planner's estimate beyond (cheap either way).
create or replace function ballast.cleanup_rows_behind(tbl regclass)
returns bigint as $$
declare
  p ballast.cleanup_policies;
  plan json;
  filter text;
  n bigint;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_rows_behind.tbl;
  if not found or ballast.cleanup_index_problem(p.tbl, p.time_column) is not null then
    return null;
  end if;
  filter := format('%I < %L::timestamptz', p.time_column, now() - p.retain) || coalesce(' and (' || p.extra_condition || ')', '');
  -- exact up to 10,000 rows (an index range scan), the planner's estimate beyond
  execute format('select count(*) from (select 1 from %s where %s limit 10000) x', p.tbl, filter) into n;
  if n < 10000 then
    return n;
  end if;
  execute format('explain (format json) select 1 from %s where %s', p.tbl, filter) into plan;
  return greatest(n, (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint);
exception when others then
  return null;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp; -- volatile: EXPLAIN
comment on function ballast.cleanup_rows_behind(regclass) is
  E'Rows of a cleanup policy''s table that are past retention: exact up to 10,000, beyond that the planner''s estimate (as fresh as the table''s statistics); null when it cannot tell.';

---- cleanup_schedules_behind
---- How many scheduled runs of a policy passed since it last caught up (a run that ended 'done').
create or replace function ballast.cleanup_schedules_behind(tbl regclass, at timestamptz default now())
returns int as $$
declare
  p ballast.cleanup_policies;
  t timestamptz;
  n int := 0;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_schedules_behind.tbl;
  if not found then
    return null;
  end if;
  -- since the last pass that caught up, or since the policy was last changed
  t := greatest(p.updated_at, (select max(r.started_at) from ballast.cleanup_runs r where r.policy = p.tbl and r.stopped_by = 'done'));
  loop
    t := ballast.cron_next(p.schedule, t);
    -- a run that may still be going on (within max_runtime and a minute of its start) is not missed yet
    exit when t is null or t > at - (p.max_runtime + interval '1 minute') or n >= 100;
    n := n + 1;
  end loop;
  return n;
end;
$$ language plpgsql stable;
comment on function ballast.cleanup_schedules_behind(regclass, timestamptz) is
  E'Scheduled runs of a cleanup policy that passed since its last run that ended done (or since the policy changed), at most 100.';

---- cleanup_status
---- One row per policy: its last run, rows past retention (estimate), schedules missed, next run.
-- ensure_view (sql/kit.sql): replaced only when the query differs (dropped and created when a column goes)
select ballast.ensure_view('ballast.cleanup_status', $view$
  select p.tbl as policy,
         coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text) as table_name,
         p.enabled, p.builtin, p.time_column, p.retain, p.batch_size, p.schedule, p.extra_condition,
         r.started_at as last_run_at,
         r.finished_at as last_finished_at,
         r.stopped_by as last_stopped_by,
         r.rows_deleted as last_rows_deleted,
         r.error as last_error,
         ballast.cleanup_rows_behind(p.tbl) as rows_behind,
         ballast.cleanup_schedules_behind(p.tbl) as schedules_behind,
         j.jobid as cron_jobid,
         case when p.enabled and j.jobid is not null then ballast.cron_next(p.schedule, now()) end as next_run_at
  from ballast.cleanup_policies p
  left join lateral (select * from ballast.cleanup_runs r where r.policy = p.tbl order by r.started_at desc limit 1) r on true
  left join lateral (select ballast.cleanup_job_id(p.tbl) as jobid) j on true
$view$);
comment on view ballast.cleanup_status is
  E'Per cleanup policy: last run (when, how it stopped, rows deleted, error), rows past retention (planner estimate), scheduled runs missed since it last caught up, pg_cron job and next scheduled run (UTC schedule).';

---- cleanup_builtin_policies
---- The policies ballast installs when their tables exist (users may adjust them; they are kept).
create or replace function ballast.cleanup_builtin_policies()
returns table (tbl text, time_column name, retain interval, batch_size int, schedule text, why text) as $$
  values
    -- expires_at is when a key stops being valid; an hour of grace past expiry, hourly
    ('ballast.idempotency_keys', 'expires_at'::name, interval '1 hour', 1000, '7 * * * *', 'idempotency keys an hour after they expire'),
    -- unprocessed rows have processed_at null and never match
    -- an hour of delivered rows feeds cache_invalidation_stats.delivered_last_hour; kept small, so every 5 minutes
    ('ballast.cache_invalidation_queue', 'processed_at'::name, interval '1 hour', 1000, '*/5 * * * *', 'delivered cache invalidations an hour after delivery'),
    ('ballast.performance_metrics', 'created_at'::name, interval '7 days', 1000, '37 * * * *', 'request metrics older than 7 days'),
    ('ballast.mv_refresh_log', 'started_at'::name, interval '30 days', 1000, '47 3 * * *', 'materialized view refresh log older than 30 days'),
    ('ballast.cleanup_runs', 'started_at'::name, interval '30 days', 1000, '52 3 * * *', 'cleanup runs older than 30 days')
    -- Not pg_cron's own log (cron.job_run_details): it is not the kit's table. Installed by a superuser, a
    -- policy there would delete every application's run history; an app that wants it adds the policy
    -- itself (the example app does, in example/sql/app_cleanup.sql).
$$ language sql immutable;
comment on function ballast.cleanup_builtin_policies() is
  E'The cleanup policies ballast installs when their table exists. The audit log has none by default: add one to opt in.';

---- install_builtin_cleanup_policies
---- Adds the built-in policies whose tables exist; one that is there already (perhaps adjusted) stays.
create or replace function ballast.install_builtin_cleanup_policies()
returns setof text as $$
declare
  b record;
begin
  for b in select * from ballast.cleanup_builtin_policies() loop
    continue when to_regclass(b.tbl) is null;
    begin
      insert into ballast.cleanup_policies (tbl, time_column, retain, batch_size, schedule, builtin)
      values (to_regclass(b.tbl), b.time_column, b.retain, b.batch_size, b.schedule, true)
      on conflict on constraint cleanup_policies_pkey do nothing;
      if found then
        return next b.tbl;
      end if;
    exception when others then
      -- say so and go on: verify__cleanup() reports it with the statement that fixes it, and the
      -- rest of the migrate is not held hostage by another capability's missing index
      raise warning 'cleanup: built-in policy for % not installed: %', b.tbl, sqlerrm;
    end;
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.install_builtin_cleanup_policies() is
  E'Installs the built-in cleanup policies whose tables exist and returns the ones it added; existing policies are left as they are (adjustments survive).';

select ballast.install_builtin_cleanup_policies();

-- Tables renamed or dropped since the last migrate: bring the pg_cron jobs back in line.
select ballast.cleanup_sync_schedules();

---- verify__cleanup
---- Every policy can use an index, is scheduled and is at most 2 schedules behind; built-ins present.
create or replace function ballast.verify__cleanup()
returns table (check_name text, ok boolean, detail text) as $$
  select 'cleanup index ' || coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text),
         x.problem is null,
         coalesce(x.problem, format('%s (%s) via %s', p.time_column, p.retain, ballast.cleanup_index(p.tbl, p.time_column)))
  from ballast.cleanup_policies p,
       lateral (select ballast.cleanup_index_problem(p.tbl, p.time_column) as problem) x
  union all
  select 'cleanup schedule ' || coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text),
         x.behind <= 2 and (to_regnamespace('cron') is null or x.jobid is not null),
         case when to_regnamespace('cron') is not null and x.jobid is null then
                'no pg_cron job ' || quote_literal(ballast.cleanup_job_name(p.tbl)) || ': npm run migrate re-creates it (select ballast.cleanup_sync_schedules())'
              when x.behind > 2 then
                format('%s scheduled runs (%s) since it last caught up; last run: %s', x.behind, p.schedule,
                       coalesce((select format('%s, stopped by %s%s', r.started_at, coalesce(r.stopped_by, 'nothing yet (running)'),
                                               coalesce(': ' || r.error, ''))
                                 from ballast.cleanup_runs r where r.policy = p.tbl order by r.started_at desc limit 1), 'never'))
              else format('%s behind (schedule %s%s)', x.behind, p.schedule,
                          case when to_regnamespace('cron') is null then ', no pg_cron here' else ', job ' || x.jobid end)
         end
  from ballast.cleanup_policies p,
       lateral (select ballast.cleanup_schedules_behind(p.tbl) as behind, ballast.cleanup_job_id(p.tbl) as jobid) x
  where p.enabled
  union all
  select 'cleanup builtin ' || b.tbl,
         exists (select 1 from ballast.cleanup_policies c where c.tbl = to_regclass(b.tbl)),
         case when exists (select 1 from ballast.cleanup_policies c where c.tbl = to_regclass(b.tbl)) then b.why
              else 'not installed: ' || coalesce(ballast.cleanup_index_problem(to_regclass(b.tbl), b.time_column),
                                                 'see the warning of sql/cleanup.sql (npm run migrate)') end
  from ballast.cleanup_builtin_policies() b
  where to_regclass(b.tbl) is not null
$$ language sql stable;
comment on function ballast.verify__cleanup() is
  E'Cleanup checks for verify_migration_success(): each policy has an index leading with its time column, a pg_cron job, and is at most 2 schedules behind; each built-in policy whose table exists is installed.';

---- metrics__cleanup
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): seconds since each policy last finished a run.
create or replace function ballast.metrics__cleanup()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_cleanup_seconds_since_run', 'Seconds since a cleanup policy last finished a run',
         jsonb_build_object('policy', r.policy::text), extract(epoch from now() - max(r.finished_at))::float8
  from ballast.cleanup_runs r where r.finished_at is not null group by r.policy::text
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__cleanup() is
  E'Gauges for /metrics: seconds since each cleanup policy last finished a run (cleanup lag).';
