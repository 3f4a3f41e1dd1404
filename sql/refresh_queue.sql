-- Materialized-view refresh queue (capability: refresh_queue).
-- So far: the check that says whether each materialized view can be refreshed CONCURRENTLY.

---- check_matview_unique_indexes
---- For every materialized view: can REFRESH ... CONCURRENTLY run on it, and if not, exactly why.
create or replace function ballast.check_matview_unique_indexes()
returns table (matview regclass, concurrent_ok boolean, reason text) as $$
  with mv as (
    select c.oid, c.relispopulated
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'm' and n.nspname not in ('pg_catalog', 'information_schema')
  ), idx as (
    select i.indrelid,
           bool_or(i.indisunique and i.indisvalid and i.indpred is null and i.indexprs is null and am.amname = 'btree') as usable,
           bool_or(i.indisunique) as any_unique,
           string_agg(
             case when i.indisunique then
               format('%s is %s', i.indexrelid::regclass, concat_ws(', ',
                 case when i.indpred is not null then 'partial (has WHERE)' end,
                 case when i.indexprs is not null then 'on expressions' end,
                 case when not i.indisvalid then 'not valid' end,
                 case when am.amname <> 'btree' then am.amname || ', not btree' end))
             end, '; ' order by i.indexrelid::regclass::text) as why_not
    from pg_index i
    join pg_class ic on ic.oid = i.indexrelid
    join pg_am am on am.oid = ic.relam
    where i.indrelid in (select oid from mv)
    group by i.indrelid
  )
  select mv.oid::regclass,
         coalesce(idx.usable, false) and mv.relispopulated,
         case
           when not coalesce(idx.any_unique, false) then
             'no unique index: create unique index on ' || mv.oid::regclass || ' (<columns that identify a row>)'
           when not idx.usable then
             'no usable unique index (' || idx.why_not || '): CONCURRENTLY needs a valid unique btree index on plain columns without WHERE'
           when not mv.relispopulated then
             'not populated: the first refresh must be a plain REFRESH MATERIALIZED VIEW'
           else 'ok'
         end
  from mv left join idx on idx.indrelid = mv.oid
  order by mv.oid::regclass::text
$$ language sql stable;
comment on function ballast.check_matview_unique_indexes() is
  E'Every materialized view in the database: whether REFRESH ... CONCURRENTLY can run on it, and the exact reason when not.';


-- ---------------------------------------------------------------------------------------------------
-- The queue. Data flows one way: statement trigger on a source table → request (flag + queue row) →
-- process_materialized_view_refreshes() (pg_cron, every minute) → ballast.mv_refresh_log.
--
-- No hot row, and no query, on the write path. Each registered view has a request flag: a sequence
-- (ballast.matview_request_flag_<oid>) holding a deadline in ms since the epoch. The source trigger reads
-- it with pg_sequence_last_value(), which is not transactional and takes no row lock: while the deadline
-- is in the future it does nothing more. Otherwise (at most once per granularity, a tenth of the debounce
-- and at most 1 s) it calls record_refresh_request(), which moves the deadline and appends a row to
-- ballast.materialized_view_refresh_queue. Each view gets a generated trigger function with its flag as
-- a constant (ballast.tg__matview_request_flag_<n>, see create_request_trigger_function()). A view is
-- pending while it has queue rows or a flag above 0.
--
-- Why skipping loses nothing: the processor claims a view by setting its flag to 0 and deleting its
-- rows, commits, then waits for every transaction that holds a write lock on one of the view's sources,
-- and only then takes the refresh snapshot. The trigger fires BEFORE each statement, but a statement
-- takes its table lock (ROW EXCLUSIVE, or ACCESS EXCLUSIVE for TRUNCATE) before its triggers fire and a
-- transaction keeps it until it ends: either the writer read the flag before the claim (then the
-- processor waits for it and the refresh sees its write) or after (then it found 0 and queued a
-- request). A request row of a writer that commits after the claim is not deleted by it. The flag being
-- outside transactions makes this hold at every isolation level; an aborted writer leaves at most a
-- spurious request. Measurements behind this design: docs/ARCHITECTURE.md.
-- ---------------------------------------------------------------------------------------------------

select ballast.owner_only_policy('ballast.registered_matviews');
select ballast.owner_only_policy('ballast.materialized_view_refresh_queue');
select ballast.owner_only_policy('ballast.mv_refresh_log');
-- Source triggers run as the writer: they look up the flag by its qualified name and may call
-- record_refresh_request(). USAGE lets any role resolve names in ballast; every object still has its own
-- privileges (functions revoked from public, tables owner-only).
grant usage on schema ballast to public;

---- refresh_lock_key
---- The second key of a view's refresh advisory lock: the view's oid as a signed int (pg_locks shows it as objid).
create or replace function ballast.refresh_lock_key(matview regclass)
returns int as $$
  select (case when matview::oid::bigint > 2147483647 then matview::oid::bigint - 4294967296
               else matview::oid::bigint end)::int
$$ language sql immutable strict;
comment on function ballast.refresh_lock_key(regclass) is
  E'Second key of the advisory lock (first key 1650551923, ''bals'') that one processor holds while it refreshes a view.';

---- try_lock_matview_refresh
---- Takes the session advisory lock that makes a processor the only one refreshing this view; false when taken.
create or replace function ballast.try_lock_matview_refresh(matview regclass)
returns boolean as $$
  select pg_catalog.pg_try_advisory_lock(1650551923, ballast.refresh_lock_key(matview))
$$ language sql volatile strict;
comment on function ballast.try_lock_matview_refresh(regclass) is
  E'Try to become the one processor refreshing this view (session advisory lock, per database); false when another holds it.';

---- unlock_matview_refresh
---- Releases the refresh lock of a view taken by try_lock_matview_refresh() in this session.
create or replace function ballast.unlock_matview_refresh(matview regclass)
returns boolean as $$
  select pg_catalog.pg_advisory_unlock(1650551923, ballast.refresh_lock_key(matview))
$$ language sql volatile strict;
comment on function ballast.unlock_matview_refresh(regclass) is
  E'Release this session''s refresh lock of a view.';

---- release_own_refresh_locks
---- Releases refresh locks this session still holds (left behind by a processor call that was cancelled).
create or replace function ballast.release_own_refresh_locks()
returns int as $$
declare
  key oid;
  released int := 0;
begin
  for key in
    select l.objid from pg_catalog.pg_locks l
    where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.classid = 1650551923 and l.objsubid = 2
  loop
    while exists (select from pg_catalog.pg_locks l
                  where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid()
                    and l.classid = 1650551923 and l.objid = key and l.objsubid = 2) loop
      perform ballast.unlock_matview_refresh(key::regclass);
      released := released + 1;
    end loop;
  end loop;
  return released;
end;
$$ language plpgsql volatile;
comment on function ballast.release_own_refresh_locks() is
  E'Release the refresh locks this session holds; a processor call starts with it, as one call at a time runs per session.';

---- refresh_request_granularity
---- How long writers skip after a recorded request: a tenth of the debounce, at most 1 s.
create or replace function ballast.refresh_request_granularity(debounce interval)
returns interval as $$
  select least(debounce / 10, interval '1 second')
$$ language sql immutable strict;
comment on function ballast.refresh_request_granularity(interval) is
  E'While writes go on, a request is recorded at most this often per view, so "debounce since the last request" errs by at most this.';

---- refresh_backoff
---- Wait before retrying a view after its n-th consecutive failure: 10 s doubling each time, at most 1 hour.
create or replace function ballast.refresh_backoff(failures int)
returns interval as $$
  select least(interval '10 seconds' * power(2, least(greatest(failures, 1), 20) - 1), interval '1 hour')
$$ language sql immutable strict;
comment on function ballast.refresh_backoff(int) is
  E'Exponential backoff after the n-th consecutive failed refresh of a view: 10 s, 20 s, 40 s, ... at most 1 hour.';

---- epoch_ms
---- A timestamp as milliseconds since 1970-01-01, the unit of the request flags.
create or replace function ballast.epoch_ms(ts timestamptz)
returns bigint as $$
begin
  if not pg_catalog.isfinite(ts) then
    raise exception using errcode = '22008', message = format('epoch_ms: %s has no milliseconds since the epoch, a finite timestamp is needed', ts);
  end if;
  return (pg_catalog.date_part('epoch', ts) * 1000)::bigint;
end;
$$ language plpgsql immutable strict;
comment on function ballast.epoch_ms(timestamptz) is
  E'Milliseconds since the Unix epoch: the unit of the request flag sequences. Raises 22008 for +/-infinity.';

---- request_flag_deadline
---- A view's request flag: until when writers need not record another request (null when none is pending).
create or replace function ballast.request_flag_deadline(request_flag regclass)
returns timestamptz as $$
  select case when v > 0 then pg_catalog.to_timestamp(v / 1000.0) end
  from (select case when exists (select from pg_catalog.pg_class c where c.oid = request_flag and c.relkind = 'S')
                    then pg_catalog.pg_sequence_last_value(request_flag) end as v) f
$$ language sql volatile strict;
comment on function ballast.request_flag_deadline(regclass) is
  E'The deadline a request flag holds (null when 0, i.e. nothing pending since the last claim).';

---- record_refresh_request
---- The write path's slow branch: moves the view's flag deadline and appends a queue row (SECURITY DEFINER).
create or replace function ballast.record_refresh_request(request_flag regclass)
returns void as $$
declare
  reg record;
  now_ms bigint := ballast.epoch_ms(clock_timestamp());
begin
  select r.matview, r.debounce into reg
  from ballast.registered_matviews r where r.request_flag = record_refresh_request.request_flag;
  if not found then
    return;  -- a trigger left behind by an unregistered view: nothing to refresh
  end if;
  -- Writers that raced here behind the first one find the deadline moved already.
  if coalesce(pg_sequence_last_value(record_refresh_request.request_flag), 0) > now_ms then
    return;
  end if;
  perform setval(record_refresh_request.request_flag,
                 now_ms + ballast.epoch_ms('epoch'::timestamptz + ballast.refresh_request_granularity(reg.debounce)));
  insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (reg.matview, clock_timestamp());
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.record_refresh_request(regclass) is
  E'Called by the source triggers when a view''s request flag has expired: records a request (flag deadline + queue row). Executable by every role; it only ever marks a registered view stale.';
-- executable by every role: granted in sql/privileges.sql, which owns every grant to PUBLIC

---- request_trigger_function
---- The trigger function register_matview() generates for a view's request flag: ballast.tg__<flag name>().
-- Its hot path is one plpgsql expression and no query: while the flag's deadline lies ahead, a recent
-- request is already pending. The flag is a constant in the body (resolved once per session, not per
-- statement), which is why each view gets its own function. Runs as the writer: SECURITY DEFINER would
-- cost more than the rest of it, and the flag is readable by everyone.
create or replace function ballast.request_trigger_function(request_flag regclass)
returns text as $$
  select format('ballast.%I', 'tg__' || c.relname) from pg_catalog.pg_class c where c.oid = request_flag
$$ language sql stable strict;
comment on function ballast.request_trigger_function(regclass) is
  E'Qualified name of the trigger function generated for a request flag (ballast.tg__matview_request_flag_<n>).';

---- create_request_trigger_function
---- (Re)creates the trigger function of a request flag; see request_trigger_function().
create or replace function ballast.create_request_trigger_function(request_flag regclass, matview regclass)
returns text as $$
declare
  fn text;
  flag text;
begin
  perform ballast.assert_relation(request_flag, 'create_request_trigger_function');
  perform ballast.assert_relation(matview, 'create_request_trigger_function');
  fn := ballast.request_trigger_function(request_flag);
  flag := ballast.relation_name(request_flag);
  execute format($f$
    create or replace function %s() returns trigger as $body$
    begin
      if pg_catalog.pg_sequence_last_value(%L::pg_catalog.regclass)
         > pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000 then
        return null;
      end if;
      perform ballast.record_refresh_request(%L::pg_catalog.regclass);
      return null;
    end;
    $body$ language plpgsql volatile$f$, fn, flag, flag);
  execute format('comment on function %s() is %L', fn,
    format('Statement trigger generated by ballast.register_matview() for %s: requests a refresh unless request flag %s holds a deadline ahead.',
           ballast.relation_name(matview), flag));
  return fn;
end;
$$ language plpgsql volatile;
comment on function ballast.create_request_trigger_function(regclass, regclass) is
  E'Generate the statement-trigger function of a registered view''s request flag (called by register_matview).';

---- relation_name
---- schema.name of a relation, always qualified and quoted (what the source triggers look the flag up by).
create or replace function ballast.relation_name(rel regclass)
returns text as $$
  select format('%I.%I', n.nspname, c.relname)
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = rel
$$ language sql stable strict;
comment on function ballast.relation_name(regclass) is
  E'schema.name of a relation, qualified whatever the search_path; null when it does not exist.';

---- refresh_trigger_name
---- The name register_matview() gives the trigger of a view on its sources: _900_ballast_mv__<schema>__<view>.
create or replace function ballast.refresh_trigger_name(matview regclass)
returns text as $$
  select case when length(base) <= 63 then base else left(base, 54) || '_' || left(md5(base), 8) end
  from (select '_900_ballast_mv__' || n.nspname || '__' || c.relname as base
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.oid = matview) b
$$ language sql stable strict;
comment on function ballast.refresh_trigger_name(regclass) is
  E'Name of the statement trigger that requests refreshes of this view on each of its source tables.';

---- refresh_triggers
---- Every trigger that runs a generated request function: on which table, under what name, for which flag.
create or replace function ballast.refresh_triggers()
returns table (source regclass, trigger_name name, request_flag regclass, function_name text, tgtype int, enabled boolean) as $$
  select t.tgrelid::regclass, t.tgname, to_regclass(format('ballast.%I', substr(p.proname, 5))),
         format('ballast.%I', p.proname), t.tgtype::int, t.tgenabled <> 'D'
  from pg_catalog.pg_trigger t
  join pg_catalog.pg_proc p on p.oid = t.tgfoid
  where p.pronamespace = 'ballast'::regnamespace and p.proname like 'tg\_\_matview\_request\_flag\_%' and not t.tgisinternal
$$ language sql stable;
comment on function ballast.refresh_triggers() is
  E'The statement triggers register_matview() installed: source table, name, the request flag they mark, their function, type, enabled.';

---- assert_matview
---- Raises 22004/42809 unless the argument is an existing materialized view.
create or replace function ballast.assert_matview(matview regclass, fn text)
returns void as $$
declare
  kind "char";
begin
  if matview is null then
    raise exception using errcode = '22004', message = format('%s: view must not be null', fn),
      hint = 'Pass a materialized view, e.g. ''app_private.fund_stats''::regclass.';
  end if;
  select c.relkind into kind from pg_catalog.pg_class c where c.oid = matview;
  if kind is distinct from 'm' then
    raise exception using errcode = '42809',
      message = format('%s: %s is %s, not a materialized view', fn, matview,
                       case when kind is null then 'not an existing relation (dropped?)'
                            else case kind when 'r' then 'a table' when 'v' then 'a view' when 'p' then 'a partitioned table'
                                           when 'f' then 'a foreign table' when 'i' then 'an index' when 'S' then 'a sequence'
                                           else format('of kind %L', kind) end end),
      hint = 'Pass a materialized view (relkind m).';
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.assert_matview(regclass, text) is
  E'Input check shared by the refresh-queue functions: raises 22004 for null, 42809 when not a materialized view.';

---- assert_matview_refreshable
---- Raises 42501 unless the role that runs the processor may refresh the view: it owns it (or is a member of
---- its owner) and may use its schema. Otherwise the processor would fail on it every minute, backing off.
create or replace function ballast.assert_matview_refreshable(matview regclass, fn text)
returns void as $$
declare
  -- the processor runs as the kit's owner (pg_cron jobs scheduled by the installer), who owns this function
  processor name := (select r.rolname from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
                     where p.oid = 'ballast.process_materialized_view_refreshes(interval)'::regprocedure);
  rel record;
begin
  perform ballast.assert_relation(matview, fn);
  select c.relowner::regrole::text as owner, n.nspname as schema_name into rel
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = matview;
  if not pg_catalog.has_schema_privilege(processor, rel.schema_name, 'USAGE') then
    raise exception using errcode = '42501',
      message = format('%s: the refresh processor runs as %I, which may not use schema %I of %s, so it could never refresh it',
                       fn, processor, rel.schema_name, matview),
      hint = format('grant usage on schema %I to %I;', rel.schema_name, processor);
  end if;
  -- REFRESH MATERIALIZED VIEW needs the view's owner (or a member of it that inherits its rights)
  if not pg_catalog.pg_has_role(processor, rel.owner::regrole, 'USAGE') then
    raise exception using errcode = '42501',
      message = format('%s: %s is owned by %s, but the refresh processor runs as %I, and REFRESH MATERIALIZED VIEW needs the owner',
                       fn, matview, rel.owner, processor),
      hint = format('alter materialized view %s owner to %I; (its new owner then needs SELECT on the tables it reads)', matview, processor);
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.assert_matview_refreshable(regclass, text) is
  E'Registration check of the refresh queue: raises 42501 unless the processor''s role (the kit''s owner) owns the materialized view, or inherits from its owner, and may use its schema; 22004 for null, 42P01 for a dropped relation.';

---- register_matview
---- Records a view and installs statement triggers on its source tables; calling it again updates the settings.
create or replace function ballast.register_matview(
  view regclass, depends_on regclass[], debounce interval default '30 seconds', max_delay interval default '5 minutes')
returns void as $$
declare
  sources regclass[];
  bad record;
  flag regclass;
  flag_name text;
  fn text;
  t record;
begin
  perform ballast.assert_matview(register_matview.view, 'register_matview');
  if register_matview.depends_on is null or cardinality(register_matview.depends_on) = 0
     or array_position(register_matview.depends_on, null) is not null then
    raise exception using errcode = '22023',
      message = format('register_matview: depends_on must list at least one source table and no nulls, got %s',
                       coalesce(register_matview.depends_on::text, 'null')),
      hint = format('e.g. select ballast.register_matview(%L, array[''app_public.funds'']::regclass[])', register_matview.view::text);
  end if;
  select array_agg(distinct s order by s) into sources from unnest(register_matview.depends_on) s;
  select s as source, c.relkind into bad
  from unnest(sources) s join pg_catalog.pg_class c on c.oid = s
  where c.relkind not in ('r', 'p') limit 1;
  if found then
    raise exception using errcode = '42809',
      message = format('register_matview: depends_on entry %s is %s, not a table', bad.source,
                       case bad.relkind when 'v' then 'a view' when 'm' then 'a materialized view'
                                        when 'f' then 'a foreign table' else format('of kind %L', bad.relkind) end),
      hint = 'List the tables the view reads; writes to them are what make it stale.';
  end if;
  if register_matview.debounce is null or register_matview.debounce <= interval '0' then
    raise exception using errcode = '22023',
      message = format('register_matview: debounce must be a positive interval, got %s', coalesce(register_matview.debounce::text, 'null')),
      hint = 'e.g. ''30 seconds'': refresh once writes have been quiet that long.';
  end if;
  if register_matview.max_delay is null or register_matview.max_delay <= interval '0' then
    raise exception using errcode = '22023',
      message = format('register_matview: max_delay must be a positive interval, got %s', coalesce(register_matview.max_delay::text, 'null')),
      hint = 'e.g. ''5 minutes'': refresh at the latest this long after the oldest pending request.';
  end if;
  if register_matview.max_delay < register_matview.debounce then
    raise exception using errcode = '22023',
      message = format('register_matview: max_delay (%s) must be at least debounce (%s)', register_matview.max_delay, register_matview.debounce),
      hint = 'Raise max_delay or lower debounce.';
  end if;
  if register_matview.max_delay > interval '1 day' then  -- debounce <= max_delay, so this bounds both
    raise exception using errcode = '22023',
      message = format('register_matview: debounce and max_delay must be at most 1 day, got debounce %s and max_delay %s',
                       register_matview.debounce, register_matview.max_delay),
      hint = 'A view refreshed less often than daily is better refreshed by a scheduled job of its own.';
  end if;
  perform ballast.assert_matview_refreshable(register_matview.view, 'register_matview');

  -- A view dropped and created again (a migration changing its query) has a new oid: forget the old
  -- registration; drop triggers whose flag belongs to no registration.
  perform ballast.unregister_matview(r.matview) from ballast.registered_matviews r
  where not exists (select from pg_catalog.pg_class c where c.oid = r.matview);
  for t in
    select x.source, x.trigger_name from ballast.refresh_triggers() x
    where not exists (select from ballast.registered_matviews r where r.request_flag = x.request_flag)
  loop
    execute format('drop trigger %I on %s', t.trigger_name, t.source);
  end loop;
  for t in
    select p.oid::regprocedure as fn from pg_catalog.pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.proname like 'tg\_\_matview\_request\_flag\_%'
      and not exists (select from ballast.registered_matviews r
                      where ballast.request_trigger_function(r.request_flag) = format('ballast.%I', p.proname))
  loop
    execute format('drop function %s', t.fn);
  end loop;

  -- The request flag: created once, kept across re-registrations (writers read it by name).
  select r.request_flag into flag from ballast.registered_matviews r where r.matview = register_matview.view;
  if flag is null then
    flag_name := 'matview_request_flag_' || register_matview.view::oid;
    flag := to_regclass(format('ballast.%I', flag_name));
    if flag is null then
      execute format('create sequence ballast.%I as bigint minvalue 0 start with 0 no cycle', flag_name);
      flag := format('ballast.%I', flag_name)::regclass;
    end if;
    -- owned by the kit's owner, who runs record_refresh_request() and the processor
    execute format('alter sequence %s owner to %I', flag,
      (select r.rolname from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
       where p.oid = 'ballast.record_refresh_request(regclass)'::regprocedure));
    execute format('grant select on sequence %s to public', flag);
    execute format('comment on sequence %s is %L', flag,
      format('refresh_queue request flag of %s: ms since the epoch until which writers need not record another request; 0 = none since the last claim',
             ballast.relation_name(register_matview.view)));
  end if;

  insert into ballast.registered_matviews as r (matview, depends_on, debounce, max_delay, request_flag)
  values (register_matview.view, sources, register_matview.debounce, register_matview.max_delay, flag)
  on conflict (matview) do update
    set depends_on = excluded.depends_on, debounce = excluded.debounce, max_delay = excluded.max_delay, updated_at = now()
    where (r.depends_on, r.debounce, r.max_delay) is distinct from (excluded.depends_on, excluded.debounce, excluded.max_delay);

  -- The trigger function, then the triggers: keep the ones that are already right (no lock taken on
  -- busy tables on a re-run), drop the others, create the missing ones.
  fn := ballast.create_request_trigger_function(flag, register_matview.view);
  for t in select * from ballast.refresh_triggers() x where x.request_flag = flag loop
    if not (t.source = any(sources)) or t.tgtype <> 62 or not t.enabled then
      execute format('drop trigger %I on %s', t.trigger_name, t.source);
    end if;
  end loop;
  for t in
    select s as source from unnest(sources) s
    where not exists (select from ballast.refresh_triggers() x where x.source = s and x.request_flag = flag)
  loop
    execute format('create trigger %I before insert or update or delete or truncate on %s for each statement execute function %s()',
                   ballast.refresh_trigger_name(register_matview.view), t.source, fn);
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.register_matview(regclass, regclass[], interval, interval) is
  E'Register a materialized view with the refresh queue: statement triggers on every source table request a refresh; refreshed when debounce has passed since the last request or max_delay since the oldest. Idempotent: a second call updates the settings. '
  'Raises 22023 unless 0 < debounce <= max_delay <= 1 day.';

---- unregister_matview
---- Removes a view's triggers, request flag, pending requests and registration (its refresh log stays).
create or replace function ballast.unregister_matview(view regclass)
returns void as $$
declare
  reg record;
  t record;
begin
  if unregister_matview.view is null then
    raise exception using errcode = '22004', message = 'unregister_matview: view must not be null';
  end if;
  select * into reg from ballast.registered_matviews r where r.matview = unregister_matview.view;
  if not found then
    raise exception using errcode = '22023',
      message = format('unregister_matview: %s is not registered', unregister_matview.view),
      hint = 'select matview from ballast.registered_matviews lists the registered views.';
  end if;
  for t in select * from ballast.refresh_triggers() x where x.request_flag = reg.request_flag loop
    execute format('drop trigger %I on %s', t.trigger_name, t.source);
  end loop;
  delete from ballast.materialized_view_refresh_queue q where q.matview = unregister_matview.view;
  delete from ballast.registered_matviews r where r.matview = unregister_matview.view;
  if to_regprocedure(ballast.request_trigger_function(reg.request_flag) || '()') is not null then
    execute format('drop function %s()', ballast.request_trigger_function(reg.request_flag));
  end if;
  execute format('drop sequence if exists %s', reg.request_flag);
end;
$$ language plpgsql volatile;
comment on function ballast.unregister_matview(regclass) is
  E'Stop refreshing a view through the queue: drops its triggers, request flag, pending requests and registration. Accepts the oid of a dropped view.';

---- request_refresh
---- Queues a refresh request for a registered view (what the source triggers do, callable by hand).
create or replace function ballast.request_refresh(view regclass)
returns void as $$
declare
  reg record;
begin
  perform ballast.assert_matview(request_refresh.view, 'request_refresh');
  select * into reg from ballast.registered_matviews r where r.matview = request_refresh.view;
  if not found then
    raise exception using errcode = '22023',
      message = format('request_refresh: %s is not registered with the refresh queue', request_refresh.view),
      hint = 'Register it first: select ballast.register_matview(view, depends_on => array[...]::regclass[]).';
  end if;
  perform setval(reg.request_flag, greatest(coalesce(pg_sequence_last_value(reg.request_flag), 0),
    ballast.epoch_ms(clock_timestamp() + ballast.refresh_request_granularity(reg.debounce))));
  insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (request_refresh.view, clock_timestamp());
end;
$$ language plpgsql volatile;
comment on function ballast.request_refresh(regclass) is
  E'Queue a refresh of a registered materialized view; it is refreshed once due (debounce / max_delay).';

---- matview_requests
---- Per registered view that exists: its pending requests (queue rows and flag), settings and backoff.
create or replace function ballast.matview_requests()
returns table (matview regclass, populated boolean, oldest timestamptz, newest timestamptz, n bigint,
               debounce interval, max_delay interval, next_attempt_at timestamptz) as $$
  -- The flag holds the last recorded request's time plus the granularity.
  select r.matview, c.relispopulated, least(q.oldest, f.requested), greatest(q.newest, f.requested), coalesce(q.n, 0),
         r.debounce, r.max_delay, r.next_attempt_at
  from ballast.registered_matviews r
  join pg_catalog.pg_class c on c.oid = r.matview and c.relkind = 'm'
  left join lateral (
    select min(x.requested_at) as oldest, max(x.requested_at) as newest, count(*) as n
    from ballast.materialized_view_refresh_queue x where x.matview = r.matview) q on true
  left join lateral (
    select ballast.request_flag_deadline(r.request_flag) - ballast.refresh_request_granularity(r.debounce) as requested) f on true
$$ language sql volatile;
comment on function ballast.matview_requests() is
  E'Each registered view''s pending requests, from its queue rows and its request flag: oldest, newest, row count; with its settings and backoff.';

---- matviews_due
---- Registered views due for a refresh at a given time, most urgent first, and why.
create or replace function ballast.matviews_due(at timestamptz default now())
returns table (matview regclass, why text, pending_since timestamptz, last_requested_at timestamptz, requests bigint) as $$
  select p.matview,
         case when not p.populated then 'never populated'
              when p.oldest <= at - p.max_delay then format('max_delay %s passed since the oldest request', p.max_delay)
              else format('debounce %s passed since the last request', p.debounce) end,
         p.oldest, p.newest, p.n
  from ballast.matview_requests() p
  where (p.next_attempt_at is null or p.next_attempt_at <= at)
    and (not p.populated or p.newest <= at - p.debounce or p.oldest <= at - p.max_delay)
  order by p.populated, p.oldest
$$ language sql volatile;
comment on function ballast.matviews_due(timestamptz) is
  E'Registered views due at the given time: never populated, or debounce passed since the last request, or max_delay since the oldest; views in failure backoff are not due.';

---- claim_matview_refresh
---- Takes a due view's pending requests (flag to 0, rows deleted) and leaves one row marking the claim.
-- The caller holds the view's refresh lock. The marking row keeps the view pending until the refresh
-- succeeds and deletes it: a processor cancelled or crashed between its claim and its refresh loses nothing.
create or replace function ballast.claim_matview_refresh(matview regclass, at timestamptz default now())
returns table (requests int, oldest_request_at timestamptz, why text, claim_row bigint) as $$
declare
  due record;
  flag regclass;
  n int;
  oldest timestamptz;
  marker bigint;
begin
  select d.why, d.pending_since into due from ballast.matviews_due(at) d where d.matview = claim_matview_refresh.matview;
  if not found then
    return;
  end if;
  select r.request_flag into flag from ballast.registered_matviews r where r.matview = claim_matview_refresh.matview;
  perform setval(flag, 0);  -- at once, outside this transaction: writers from now on record new requests
  with claimed as (
    delete from ballast.materialized_view_refresh_queue q where q.matview = claim_matview_refresh.matview
    returning q.requested_at)
  select count(*)::int, least(min(claimed.requested_at), due.pending_since) into n, oldest from claimed;
  insert into ballast.materialized_view_refresh_queue (matview, requested_at)
  values (claim_matview_refresh.matview, coalesce(oldest, at)) returning id into marker;
  return query select n, oldest, due.why, marker;
end;
$$ language plpgsql volatile;
comment on function ballast.claim_matview_refresh(regclass, timestamptz) is
  E'Claim a view''s pending requests if it is due: flag set to 0, queue rows replaced by one row that the successful refresh deletes. Returns how many rows, the oldest request, why it was due, the marking row. The caller must hold the view''s refresh lock.';

---- wait_for_source_writers
---- Waits until every transaction holding a write lock on one of the view's sources now has ended (at most max_wait).
create or replace function ballast.wait_for_source_writers(matview regclass, max_wait interval)
returns table (writers int, still_open int, waited interval) as $$
declare
  sources oid[];
  first_seen text[];
  open text[];
  started timestamptz := clock_timestamp();
begin
  select array_agg(s::oid) into sources
  from ballast.registered_matviews r, unnest(r.depends_on) s where r.matview = wait_for_source_writers.matview;
  loop
    -- A writer's locks are released only after its commit is visible to new snapshots.
    select array_agg(distinct l.virtualtransaction) into open
    from pg_catalog.pg_locks l
    where l.locktype = 'relation'
      and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
      and l.relation = any(sources) and l.granted and l.pid is distinct from pg_catalog.pg_backend_pid()
      and l.mode in ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
      and (first_seen is null or l.virtualtransaction = any(first_seen));
    if first_seen is null then
      first_seen := coalesce(open, '{}');
    end if;
    exit when open is null or clock_timestamp() - started >= max_wait;
    perform pg_catalog.pg_sleep(0.005);
  end loop;
  return query select cardinality(first_seen), coalesce(cardinality(open), 0), clock_timestamp() - started;
end;
$$ language plpgsql volatile;
comment on function ballast.wait_for_source_writers(regclass, interval) is
  E'The processor''s barrier between claiming a view''s requests and refreshing it: waits for the transactions that hold a write lock on a source now (writers that may have skipped queueing because a request was pending).';

---- refresh_registered_matview
---- Refreshes one view now (CONCURRENTLY when possible), logs it, and on failure keeps it pending with backoff.
create or replace function ballast.refresh_registered_matview(
  matview regclass, requests int default 0, oldest_request_at timestamptz default null,
  note text default null, keep_pending boolean default false, claim_row bigint default null)
returns boolean as $$
declare
  concurrent_ok boolean;
  why_not text;
  started timestamptz;
  finished timestamptz;
  err text;
begin
  perform ballast.assert_matview(refresh_registered_matview.matview, 'refresh_registered_matview');
  select m.concurrent_ok, m.reason into concurrent_ok, why_not
  from ballast.check_matview_unique_indexes() m where m.matview = refresh_registered_matview.matview;
  -- A plain refresh takes an ACCESS EXCLUSIVE lock: do not queue readers behind a long wait for it.
  perform set_config('lock_timeout', coalesce(nullif(current_setting('ballast.refresh_lock_timeout', true), ''), '10s'), true);
  started := clock_timestamp();
  begin
    execute format('refresh materialized view %s %s', case when concurrent_ok then 'concurrently' else '' end,
                   refresh_registered_matview.matview);
  exception when others then
    err := sqlstate || ': ' || sqlerrm;
  end;
  finished := clock_timestamp();
  insert into ballast.mv_refresh_log (matview, started_at, finished_at, mode, ok, error, detail, requests, oldest_request_at)
  values (refresh_registered_matview.matview, started, finished, case when concurrent_ok then 'concurrent' else 'plain' end,
          err is null, err, concat_ws('; ', case when not concurrent_ok then 'plain: ' || why_not end, note),
          coalesce(refresh_registered_matview.requests, 0), refresh_registered_matview.oldest_request_at);
  if err is null then
    update ballast.registered_matviews r set consecutive_failures = 0, next_attempt_at = null
    where r.matview = refresh_registered_matview.matview and (r.consecutive_failures, r.next_attempt_at) is distinct from (0, null);
    delete from ballast.materialized_view_refresh_queue q where q.id = refresh_registered_matview.claim_row;
    if keep_pending then  -- writers still open: their writes may not be in this refresh
      insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (refresh_registered_matview.matview, finished);
    end if;
  else
    update ballast.registered_matviews r
    set consecutive_failures = r.consecutive_failures + 1,
        next_attempt_at = finished + ballast.refresh_backoff(r.consecutive_failures + 1)
    where r.matview = refresh_registered_matview.matview;
    -- Still stale: it stays pending with the age of its oldest request (max_delay keeps counting), through
    -- the claim's row, or a new one when there was no claim.
    if refresh_registered_matview.claim_row is null then
      insert into ballast.materialized_view_refresh_queue (matview, requested_at)
      values (refresh_registered_matview.matview, coalesce(refresh_registered_matview.oldest_request_at, started));
    end if;
  end if;
  return err is null;
end;
$$ language plpgsql volatile;
comment on function ballast.refresh_registered_matview(regclass, int, timestamptz, text, boolean, bigint) is
  E'One refresh of a registered view, logged in mv_refresh_log: CONCURRENTLY when populated with a usable unique index, else plain (the log says why). A failure is logged, the view stays pending and is retried after ballast.refresh_backoff().';

---- process_materialized_view_refreshes
---- The processor (pg_cron, every minute): refreshes each due view once, one processor per view, committing between views.
create or replace procedure ballast.process_materialized_view_refreshes(max_runtime interval default '50 seconds')
as $$
declare
  deadline timestamptz;
  tried regclass[] := '{}';
  v regclass;
  claimed record;
  writers record;
  max_wait interval := coalesce(nullif(current_setting('ballast.refresh_writer_wait', true), ''), '10s')::interval;
begin
  if max_runtime is null or max_runtime <= interval '0' or max_runtime > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('process_materialized_view_refreshes: max_runtime must be more than 0 and at most 1 day, got %s', coalesce(max_runtime::text, 'null')),
      hint = 'e.g. ''50 seconds'' when pg_cron calls it every minute.';
  end if;
  deadline := clock_timestamp() + max_runtime;
  perform ballast.release_own_refresh_locks();
  -- requests for views that are no longer registered (unregistered while a writer was in flight)
  delete from ballast.materialized_view_refresh_queue q
  where not exists (select from ballast.registered_matviews r where r.matview = q.matview);
  commit;
  loop
    exit when clock_timestamp() >= deadline;
    v := (select d.matview from ballast.matviews_due(clock_timestamp()) d where not (d.matview = any(tried)) limit 1);
    exit when v is null;
    tried := tried || v;  -- each view at most once per call: a failing view never loops
    continue when not ballast.try_lock_matview_refresh(v);  -- another processor is refreshing it
    claimed := null;
    select c.requests, c.oldest_request_at, c.why, c.claim_row into claimed
    from ballast.claim_matview_refresh(v, clock_timestamp()) c;
    commit;  -- writers now find the flag at 0 and record new requests
    if claimed.why is null then  -- refreshed by another processor in the meantime
      perform ballast.unlock_matview_refresh(v);
      continue;
    end if;
    select w.writers, w.still_open, w.waited into writers from ballast.wait_for_source_writers(v, max_wait) w;
    commit;  -- the refresh below takes its snapshot after those writers ended, whatever the isolation level
    perform ballast.refresh_registered_matview(v, claimed.requests, claimed.oldest_request_at,
      concat_ws('; ', claimed.why,
        case when writers.writers > 0 then format('waited %s s for %s writer transaction(s)',
                                                  round(extract(epoch from writers.waited)::numeric, 3), writers.writers) end,
        case when writers.still_open > 0 then format('%s writer transaction(s) still open after %s: kept pending',
                                                     writers.still_open, max_wait) end),
      writers.still_open > 0, claimed.claim_row);
    commit;
    perform ballast.unlock_matview_refresh(v);
  end loop;
  -- the refresh log's retention (30 days) is the cleanup capability's built-in policy on mv_refresh_log
end;
$$ language plpgsql;
comment on procedure ballast.process_materialized_view_refreshes(interval) is
  E'Refresh every due registered view (once each per call, most urgent first), one processor per view at a time, committing after each. CALL it outside a transaction block; pg_cron runs it every minute. Raises 22023 unless 0 < max_runtime <= 1 day.';

---- matview_status
---- Per registered view: pending since, last refresh, staleness, last error, whether CONCURRENTLY works.
select ballast.ensure_view('ballast.matview_status', $view$
  select r.matview,
         c.relispopulated as populated,
         p.oldest as pending_since,
         p.newest as last_requested_at,
         coalesce(p.n, 0) as pending_requests,
         good.started_at as last_refresh_at,          -- the data is as of (at least) this moment
         good.duration as last_refresh_duration,
         case when c.oid is null or not c.relispopulated then null
              when p.oldest is null then interval '0'
              else greatest(now() - p.oldest, interval '0') end as staleness,
         last.ok as last_attempt_ok,
         case when not last.ok then last.error end as last_error,
         r.consecutive_failures,
         r.next_attempt_at,
         ci.concurrent_ok,
         ci.reason as concurrent_reason,
         lk.pid as refreshing_pid,
         r.debounce, r.max_delay, r.depends_on, r.request_flag
  from ballast.registered_matviews r
  left join pg_catalog.pg_class c on c.oid = r.matview
  left join ballast.matview_requests() p on p.matview = r.matview
  left join lateral (
    select l.started_at, l.duration from ballast.mv_refresh_log l
    where l.matview = r.matview and l.ok order by l.started_at desc limit 1) good on true
  left join lateral (
    select l.ok, l.error from ballast.mv_refresh_log l
    where l.matview = r.matview order by l.started_at desc limit 1) last on true
  left join ballast.check_matview_unique_indexes() ci on ci.matview = r.matview
  left join pg_catalog.pg_locks lk
    on lk.locktype = 'advisory' and lk.classid = 1650551923 and lk.objid = r.matview::oid and lk.objsubid = 2
   and lk.granted and lk.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
$view$);
comment on view ballast.matview_status is
  E'One row per registered materialized view: pending since, last refresh, staleness (age of the oldest pending request), last error, backoff, whether CONCURRENTLY works, which backend is refreshing it.';

---- verify__refresh_queue
---- verify_migration_success() checks: triggers on every source, the pg_cron job, no view failing repeatedly.
create or replace function ballast.verify__refresh_queue()
returns table (check_name text, ok boolean, detail text) as $$
declare
  job record;
begin
  if to_regclass('cron.job') is null then
    return query select 'refresh_queue cron job'::text, false,
      'pg_cron is not installed in this database: process_materialized_view_refreshes() never runs'::text;
  else
    execute $q$select j.jobid, j.schedule, j.active, j.command from cron.job j
               where j.jobname = 'ballast_refresh_matviews' order by j.jobid limit 1$q$ into job;
    return query select 'refresh_queue cron job'::text, coalesce(job.active, false),
      case when job.jobid is null then 'missing: sql/refresh_queue.sql schedules ballast_refresh_matviews'
           when not job.active then format('job %s is inactive: select cron.alter_job(%s, active => true)', job.jobid, job.jobid)
           else format('job %s runs %L on %L', job.jobid, job.command, job.schedule) end;
  end if;
  return query
    select 'refresh_queue triggers ' || coalesce(ballast.relation_name(r.matview), r.matview::oid::text),
           c.oid is not null and missing.list is null and to_regclass(r.request_flag::text) is not null,
           case when c.oid is null then format('view %s no longer exists: select ballast.unregister_matview(%s)', r.matview::oid, r.matview::oid)
                when to_regclass(r.request_flag::text) is null then format('request flag %s is missing: unregister and register the view again', r.request_flag)
                when missing.list is not null then format('no enabled, current refresh trigger on %s: select ballast.register_matview(%L, %L)',
                                                          missing.list, r.matview::text, r.depends_on::text)
                else format('on %s', array_to_string(r.depends_on::text[], ', ')) end
    from ballast.registered_matviews r
    left join pg_catalog.pg_class c on c.oid = r.matview and c.relkind = 'm'
    left join lateral (
      select string_agg(s::text, ', ') as list from unnest(r.depends_on) s
      where not exists (select from ballast.refresh_triggers() t
                        where t.source = s and t.request_flag = r.request_flag and t.enabled and t.tgtype = 62)) missing on true
    union all
    select 'refresh_queue failures ' || coalesce(ballast.relation_name(r.matview), r.matview::oid::text),
           r.consecutive_failures < 3,
           case when r.consecutive_failures = 0 then 'last refresh ok or none yet'
                else format('%s consecutive failed refresh(es), next attempt %s; last error: %s', r.consecutive_failures,
                            r.next_attempt_at,
                            (select l.error from ballast.mv_refresh_log l where l.matview = r.matview and not l.ok
                             order by l.started_at desc limit 1)) end
    from ballast.registered_matviews r;
end;
$$ language plpgsql stable;
comment on function ballast.verify__refresh_queue() is
  E'Refresh-queue checks for verify_migration_success(): the pg_cron job exists and is active, every registered view has its triggers on all sources, none failed its last 3 refreshes.';

-- The processor, every minute, in the database pg_cron lives in (not in the shadow database).
select ballast.schedule_job('ballast_refresh_matviews', '* * * * *', 'call ballast.process_materialized_view_refreshes()');

---- metrics__refresh_queue
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): pending requests, seconds since each view's last good refresh.
create or replace function ballast.metrics__refresh_queue()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_matview_refresh_pending', 'Rows in the materialized-view refresh queue', '{}'::jsonb, count(*)::float8
  from ballast.materialized_view_refresh_queue
  union all
  select 'ballast_matview_seconds_since_refresh', 'Seconds since the last successful refresh of a materialized view',
         jsonb_build_object('view', l.matview::text), extract(epoch from now() - max(l.finished_at))::float8
  from ballast.mv_refresh_log l where l.ok group by l.matview::text
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__refresh_queue() is
  E'Gauges for /metrics: rows in the refresh queue; seconds since each view''s last successful refresh.';
