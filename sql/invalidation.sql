-- Cache invalidation (capability: invalidation): semantic cache tags ('fund:42', 'funds') flow
--   write → statement-level trigger → ballast.cache_invalidation_inbox (append only)
--         → drain_cache_invalidation_queue(): merge into ballast.cache_invalidation_queue (deduplicated)
--           and claim a batch with a lease → worker task ballast_deliver_cache_invalidations → sinks (HTTP purge,
--           Redis tag sets, log) → ack, or backoff and finally ballast.cache_invalidation_dead_letters.
-- Tables: migrations (inbox, queue, dead letters, triggers registry). docs/ARCHITECTURE.md has the long form.
--
-- Why it is shaped like this:
-- * The write path appends a row (one per statement, or per row for statements of up to 16 rows) to a
--   table with no index and no sequence, runs as the writer (no SECURITY DEFINER), and does
--   nothing else: no dedup lookup, no wake-up, no lock anyone else waits for. Each of those cost a single-row
--   UPDATE a measurable share of its time (bench/scenarios/invalidation.ts); the worker polls instead.
-- * Dedup happens when the worker's drain merges the inbox, against queue rows nobody has claimed yet.
--   The inbox rows it merges are committed, and the pending row that absorbs them is claimed by this or a
--   later transaction, so a purge never overtakes the commit it is for.
-- * The queue's functions keep index plans whatever the statistics say (enable_seqscan, and for the claim
--   enable_sort and enable_bitmapscan, off). The queue is usually near empty, and PL/pgSQL keeps one
--   generic plan per session: planned on an empty queue, the drain's update of the claimed ids scanned the
--   whole queue per batch for as long as a burst lasted (bench invalidation part 3 from a freshly emptied
--   queue: 4.8k tags/s, 42.6k with the index). Those settings reach the merge the drain calls, whose scan
--   of the inbox (no index) then carries the planner's "disabled" penalty, far above jit_above_cost: drain
--   and merge run with jit = off, or every batch compiles with LLVM (~70% of the time; 7k tags/s).
-- * Triggers are generated per table with static SQL, so PL/pgSQL caches their plans (no EXECUTE, no
--   re-planning per statement). A statement with few rows renders every template in one INSERT; a big
--   one counts distinct placeholder values per template and collapses above collapse_above.
-- * A tag is 1..512 characters with no whitespace, control character or comma (cache_tag_forbidden_pattern):
--   CDN surrogate keys are space- or comma-separated lists. Functions refuse such a tag (22023); a trigger
--   renders the collapsed tag instead of one (only placeholders whose type can print such text are checked).
-- * Acks and failures are fenced by the claim (id and the attempts the drain returned), and the merge never
--   folds a change into a claimed row, even after its lease ran out: a worker that outlived its lease can
--   neither ack a row claimed again since nor mark delivered a change it never sent.

select ballast.owner_only_policy('ballast.cache_invalidation_inbox');
-- The generated trigger functions run as the writer, so every role may append to the inbox, but only
-- from inside a trigger: a session cannot queue purges of its choosing with a plain INSERT. Tags are
-- checked (check_cache_tag's rules) where the merge reads them.
grant insert on ballast.cache_invalidation_inbox to public;
select ballast.ensure_policy('ballast.cache_invalidation_inbox', 'append_from_triggers', 'insert', array['public']::name[],
  check_expr => 'pg_trigger_depth() > 0');
select ballast.owner_only_policy('ballast.cache_invalidation_queue');
select ballast.owner_only_policy('ballast.cache_invalidation_dead_letters');
select ballast.owner_only_policy('ballast.cache_invalidation_triggers');

---- wake_cache_invalidation_worker
---- Queues the delivery job unless one is already waiting to run (checked without taking a lock).
create or replace function ballast.wake_cache_invalidation_worker()
returns boolean as $$
declare
  -- The job key ballast/worker's crontab and run() use too (worker/tasks/deliver_cache_invalidations.ts).
  job_key constant text := 'ballast:deliver_cache_invalidations';
  s constant name := ballast.worker_schema();  -- ballast_worker, or the app's own runner's schema
  waiting boolean;
begin
  if to_regclass(format('%I.jobs', s)) is null then
    -- No worker has installed graphile-worker there yet: the queue keeps the tags for the first one.
    raise notice 'ballast: no graphile-worker in schema % (setting worker_schema) yet: no delivery job queued', s;
    return false;
  end if;
  -- A locked job is running; graphile-worker gives the key of a locked job to the new one.
  execute format('select exists (select 1 from %I.jobs j where j.key = $1 and j.locked_at is null
                    and j.attempts < j.max_attempts and j.run_at <= now() + interval ''1 second'')', s)
    into waiting using job_key;
  if waiting then
    return false;
  end if;
  execute format('select %I.add_job($1, ''{}''::json, job_key => $2, job_key_mode => ''preserve_run_at'')', s)
    using 'ballast_deliver_cache_invalidations', job_key;
  return true;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.wake_cache_invalidation_worker() is
  E'Queue the ballast_deliver_cache_invalidations worker job (in the schema of setting worker_schema) now unless one is already waiting; true when it queued one. The worker also polls, so this only shortens the wait after a restart or a requeue.';

---- cache_tag_forbidden_pattern
---- The characters a cache tag may not hold, as a regular expression (one place for every check).
-- A tag is 1..512 characters, none of them whitespace (ASCII or Unicode: spaces, tabs, line breaks,
-- no-break and zero-width spaces), a control character, or a comma. CDN surrogate-key headers are
-- space- or comma-separated lists (Fastly Surrogate-Key, Cloudflare Cache-Tag), so one such character
-- would split a tag into two purges or smuggle a second header line. Everything else ('fund:42',
-- 'org/7#funds', 'name:Zoë', '$x') is allowed.
create or replace function ballast.cache_tag_forbidden_pattern()
returns text as $$
  select '[[:space:][:cntrl:],\u0085\u00a0\u1680\u180e\u2000-\u200b\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]'::text
$$ language sql immutable parallel safe;
comment on function ballast.cache_tag_forbidden_pattern() is
  E'The regular expression of the characters a cache tag may not hold: whitespace (ASCII and Unicode spaces, line breaks, zero-width spaces), control characters and commas, which separate keys in CDN surrogate-key headers.';

---- check_cache_tag
---- Raises 22004/22023 unless the tag is 1..512 characters without whitespace, control characters or commas.
create or replace function ballast.check_cache_tag(tag text, what text default 'tag')
returns void as $$
declare
  v_bad text;
begin
  if tag is null then
    raise exception using errcode = '22004', message = format('%s must not be null', what),
      hint = 'A cache tag names what to invalidate, e.g. ''fund:42'' or ''funds''.';
  end if;
  if length(tag) not between 1 and 512 then
    raise exception using errcode = '22023',
      message = format('%s must be 1..512 characters, got %s: %L', what, length(tag),
                       left(tag, 40) || case when length(tag) > 40 then '…' else '' end),
      hint = 'Use a short semantic name such as ''fund:42''; hash long keys.';
  end if;
  v_bad := substring(tag from ballast.cache_tag_forbidden_pattern());
  if v_bad is not null then
    raise exception using errcode = '22023',
      message = format('%s must not contain whitespace, control characters or commas, got %L with U+%s at character %s',
                       what, left(tag, 60) || case when length(tag) > 60 then '…' else '' end,
                       upper(lpad(to_hex(ascii(v_bad)), 4, '0')), position(v_bad in tag)),
      hint = 'CDN surrogate keys are separated by spaces or commas: use '':'', ''-'', ''_'' or ''/'' inside a tag, e.g. ''fund:42'' or ''org-7:funds''.';
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.check_cache_tag(text, text) is
  E'Raise 22004 (null) or 22023 (empty, over 512 characters, or holding whitespace, a control character or a comma) for an unusable cache tag.';

---- enqueue_cache_invalidation
---- Queues one tag for delivery unless the same tag is already pending within the window.
create or replace function ballast.enqueue_cache_invalidation(tag text, dedup_window_minutes int default 1)
returns boolean as $$
begin
  perform ballast.check_cache_tag(tag);
  if dedup_window_minutes is null or dedup_window_minutes not between 0 and 1440 then
    raise exception using errcode = '22023',
      message = format('dedup_window_minutes must be 0..1440, got %s', coalesce(dedup_window_minutes::text, 'null')),
      hint = '0 disables deduplication; the default is 1.';
  end if;
  if dedup_window_minutes > 0 and exists (
       select 1 from ballast.cache_invalidation_queue q
       where q.tag = enqueue_cache_invalidation.tag and q.processed_at is null
         and q.leased_until is null   -- never claimed, or failed: not on its way to a sink
         and q.enqueued_at > now() - make_interval(mins => dedup_window_minutes)) then
    -- Covered by a pending row. A worker may claim that row before this transaction commits, so leave a
    -- note in the inbox: the next merge folds it into a pending row, or queues it again if there is none.
    insert into ballast.cache_invalidation_inbox (tags) values (array[tag]);
    return false;
  end if;
  insert into ballast.cache_invalidation_queue (tag) values (tag);
  return true;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.enqueue_cache_invalidation(text, int) is
  E'Queue a cache tag for invalidation. Returns false when an equal tag, enqueued within dedup_window_minutes and not claimed by a worker (or failed since), is pending and covers it (0 disables deduplication).';

---- cache_tag_template
---- Parses one invalidate_on_change template against a table: SQL expression, collapsed tag, columns.
create or replace function ballast.cache_tag_template(tbl regclass, template text,
  out expr text, out collapsed text, out columns text[], out per_row boolean)
as $$
declare
  v_body text := template;
  v_lits text[];
  v_names text[];
  v_cols text[];
  v_max int;
  v_plain boolean;
  i int;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = format('tag template %L: the table must not be null', template),
      hint = 'Pass the table whose columns the {placeholders} name, e.g. ''app_public.funds''::regclass.';
  end if;
  -- whole: length only; ' => ' has spaces, so the characters are checked in the parts below
  if template is null or length(template) not between 1 and 512 then
    raise exception using errcode = case when template is null then '22004' else '22023' end,
      message = format('tag template must be 1..512 characters, got %s', coalesce(length(template)::text, 'null')),
      hint = 'Example: ''fund:{id}'', or ''fund:{id} => funds'' with the tag a bulk change enqueues instead.';
  end if;
  if position('=>' in template) > 0 then
    v_body := btrim(split_part(template, '=>', 1));
    collapsed := btrim(substr(template, position('=>' in template) + 2));
    if collapsed = '' or collapsed ~ '[{}]' or position('=>' in collapsed) > 0 then
      raise exception using errcode = '22023',
        message = format('tag template %L: the collapsed tag after => must be a plain tag without {placeholders}, got %L', template, collapsed),
        hint = 'Example: ''fund:{id} => funds:all''.';
    end if;
  end if;
  v_names := array(select m[1] from regexp_matches(v_body, '\{([^{}]*)\}', 'g') as m);
  if regexp_replace(v_body, '\{[^{}]*\}', '', 'g') ~ '[{}]' then
    raise exception using errcode = '22023',
      message = format('tag template %L has an unbalanced { or }', template),
      hint = 'Placeholders look like {column_name}, e.g. ''org:{org_id}:funds''.';
  end if;
  v_cols := array(select a.attname::text from pg_attribute a
                  where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped order by a.attnum);
  for i in 1 .. coalesce(array_length(v_names, 1), 0) loop
    if not v_names[i] = any(v_cols) then
      raise exception using errcode = '42703',
        message = format('tag template %L: table %s has no column %L', template, tbl, v_names[i]),
        hint = format('Columns of %s: %s.', tbl, array_to_string(v_cols, ', '));
    end if;
  end loop;
  v_lits := regexp_split_to_array(v_body, '\{[^{}]*\}');
  if array_to_string(v_lits, '') ~ ballast.cache_tag_forbidden_pattern() then
    perform ballast.check_cache_tag(array_to_string(v_lits, ''), format('the text around the placeholders of tag template %L', template));
  end if;
  collapsed := coalesce(collapsed, array_to_string(v_lits, ''));
  if collapsed = '' then
    raise exception using errcode = '22023',
      message = format('tag template %L is nothing but placeholders, so it has no collapsed form', template),
      hint = format('Name the tag a bulk change enqueues instead, e.g. ''%s => all''.', v_body);
  end if;
  perform ballast.check_cache_tag(collapsed, format('collapsed tag of template %L', template));
  columns := array(select distinct unnest(v_names) order by 1);
  per_row := cardinality(v_names) > 0;
  if not per_row then
    perform ballast.check_cache_tag(v_body, 'tag template');
    expr := quote_literal(v_body);
    return;
  end if;
  -- Rendered from row d; a NULL placeholder renders NULL (no tag). The longest text each placeholder's
  -- type can print: when the tag cannot pass 512 characters there is nothing to check on the write path.
  v_max := length(array_to_string(v_lits, ''));
  v_plain := true;
  expr := quote_literal(v_lits[1]);
  for i in 1 .. array_length(v_names, 1) loop
    expr := expr || format(' || (d.%I)::text', v_names[i]) || case when v_lits[i + 1] <> '' then format(' || %L', v_lits[i + 1]) else '' end;
    v_max := v_max + (
      select case t.typname
               when 'int2' then 6 when 'int4' then 11 when 'int8' then 20 when 'oid' then 10 when 'bool' then 5
               when 'uuid' then 36 when 'date' then 16 when 'timestamp' then 32 when 'timestamptz' then 40
               when 'float4' then 16 when 'float8' then 24
               when 'varchar' then nullif(a.atttypmod, -1) - 4 when 'bpchar' then nullif(a.atttypmod, -1) - 4
             end
      from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = tbl and a.attname = v_names[i]);
    -- types whose text never holds whitespace, a control character or a comma (dates and timestamps
    -- print a space in some DateStyles, text anything)
    v_plain := v_plain and (select t.typname in ('int2', 'int4', 'int8', 'oid', 'bool', 'uuid', 'float4', 'float8', 'numeric')
                            from pg_attribute a join pg_type t on t.oid = a.atttypid
                            where a.attrelid = tbl and a.attname = v_names[i]);
  end loop;
  -- A value that makes an unusable tag (too long, or a character check_cache_tag refuses) falls back to
  -- the collapsed tag: an invalidation trigger must never fail the write. Generated only for placeholder
  -- types that can print such a value, so a template over integer or uuid keys costs what it did.
  if not v_plain then
    expr := format('case when length(%1$s) > 512 or %1$s ~ %3$L then %2$L else %1$s end', expr, collapsed,
                   ballast.cache_tag_forbidden_pattern());
  elsif v_max is null or v_max > 512 then
    expr := format('case when length(%1$s) > 512 then %2$L else %1$s end', expr, collapsed);
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.cache_tag_template(regclass, text) is
  E'Parse a tag template for invalidate_on_change(): its SQL expression over row d (NULL when a placeholder is NULL; the collapsed tag when the value would make a tag check_cache_tag() refuses), collapsed tag, placeholder columns; rejects a null table or template (22004), unknown columns (42703) and malformed templates or literal text check_cache_tag() refuses (22023).';

---- invalidate_on_change
---- Installs statement-level triggers on a table that enqueue tags rendered from its changed rows.
create or replace function ballast.invalidate_on_change(tbl regclass, tags text[], collapse_above int default 1000)
returns void as $$
declare
  v_kind "char";
  v_t record;
  v_templates jsonb := '[]';
  v_fn text;
  v_old_fn text;
  v_owner name;
  v_unique_sets text[];
  v_cols text[] := '{}';
  v_col_list text;
  v_fixed text[] := '{}';          -- the tags TRUNCATE enqueues: every collapsed and constant tag
  v_row_exprs text[];
  v_parts text[];
  v_guard text;
  v_distinct text;
  v_src text;
  v_count_src text;
  v_uncounted_max int; -- the most rows a statement may change and render every template without counting (UPDATE: OLD+NEW)
  v_body text := '';
  v_fn_src text;
  v_quote text;
  v_op text;
  i int;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'invalidate_on_change: table must not be null';
  end if;
  select c.relkind into v_kind from pg_class c where c.oid = tbl;
  if v_kind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('invalidate_on_change: %s is not a table (relkind %s)', tbl, v_kind),
      hint = 'Register the table the view or materialized view reads from.';
  end if;
  if tags is null or cardinality(tags) = 0 then
    raise exception using errcode = '22023',
      message = format('invalidate_on_change(%s): give at least one tag template, got %s', tbl, coalesce(tags::text, 'null')),
      hint = 'Example: array[''fund:{id}'', ''org:{org_id}:funds'', ''funds''].';
  end if;
  if collapse_above is null or collapse_above < 1 then
    raise exception using errcode = '22023',
      message = format('invalidate_on_change(%s): collapse_above must be at least 1, got %s', tbl, coalesce(collapse_above::text, 'null')),
      hint = 'The number of distinct tags one statement may enqueue per template before it enqueues the collapsed tag instead; default 1000.';
  end if;

  -- Column sets that identify a row (unique, non-partial, plain NOT NULL columns): a template using all
  -- of one renders a distinct tag per row, so a statement with more rows collapses it without counting.
  v_unique_sets := array(
    select string_agg(a.attname::text, ',' order by a.attname)
    from pg_index x
    cross join lateral unnest(x.indkey::int2[]) k(attnum)
    join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
    where x.indrelid = tbl and x.indisunique and x.indpred is null and x.indexprs is null
    group by x.indexrelid
    having bool_and(a.attnotnull));

  for i in 1 .. cardinality(tags) loop
    select * into v_t from ballast.cache_tag_template(tbl, tags[i]);
    v_templates := v_templates || jsonb_build_object('expr', v_t.expr, 'collapsed', v_t.collapsed,
      'columns', to_jsonb(v_t.columns), 'per_row', v_t.per_row,
      'unique', exists (select 1 from unnest(v_unique_sets) s where string_to_array(s, ',') <@ v_t.columns));
    v_fixed := v_fixed || v_t.collapsed;   -- a constant template's collapsed form is itself
    if v_t.per_row then
      v_cols := v_cols || v_t.columns;
    end if;
  end loop;
  v_col_list := coalesce((select string_agg(format('%I', c), ', ') from (select distinct unnest(v_cols) as c order by 1) x), '');

  v_fn := format('tg__invalidate_cache__%s_%s', left((select relname from pg_class where oid = tbl), 30), tbl::oid);
  select t.function_name into v_old_fn from ballast.cache_invalidation_triggers t where t.tbl = invalidate_on_change.tbl;

  foreach v_op in array array['INSERT', 'UPDATE', 'DELETE'] loop
    v_src := case v_op when 'INSERT' then 'ballast_new' when 'DELETE' then 'ballast_old'
                       else format('(select %1$s from ballast_new union all select %1$s from ballast_old)', v_col_list) end;
    v_count_src := case v_op when 'DELETE' then 'ballast_old' else 'ballast_new' end;
    v_uncounted_max := case v_op when 'UPDATE' then collapse_above / 2 else collapse_above end;
    v_row_exprs := '{}';
    v_parts := '{}';
    for v_t in select * from jsonb_to_recordset(v_templates)
                 as x(expr text, collapsed text, columns text[], per_row boolean, "unique" boolean) loop
      if not v_t.per_row then
        v_row_exprs := v_row_exprs || format('(%s::text)', v_t.expr);
        v_parts := v_parts || format('select %s::text', v_t.expr);
        continue;
      end if;
      v_row_exprs := v_row_exprs || format('(%s)', v_t.expr);  -- NULL when a placeholder is: the merge drops it
      v_guard := (select string_agg(format('d.%I is not null', c), ' and ') from unnest(v_t.columns) c);
      -- big statements: distinct placeholder values first (cheap to hash), then at most
      -- collapse_above + 1 tags rendered from them, or the collapsed tag
      v_distinct := format('select distinct %s from %s d where %s',
        (select string_agg(format('d.%I', c), ', ') from unnest(v_t.columns) c), v_src, v_guard);
      if v_t."unique" then
        v_parts := v_parts || format('select unnest(case when n > %1$s then array[%2$L] '
                                     'else array(select %3$s from (%4$s) d) end)',
                                     collapse_above, v_t.collapsed, v_t.expr, v_distinct);
      else
        v_parts := v_parts || format('select unnest(case when cardinality(a.t) > %1$s then array[%2$L] else a.t end) '
                                     'from (select array(select %3$s from (%4$s limit %5$s) d) as t) a',
                                     collapse_above, v_t.collapsed, v_t.expr, v_distinct, collapse_above + 1);
      end if;
    end loop;
    -- Three sizes of statement. Up to 16 rows (the common single-row write): one inbox row per
    -- transition row, an array rendered per row with no aggregate, the cheapest plan there is. Up to
    -- collapse_above rows (half that for UPDATE, which renders OLD and NEW): cannot produce more than
    -- collapse_above tags from one template, so one aggregated row, no counting. The counts in their WHERE
    -- are initplans that gate the scans, so a bigger statement skips them and takes the third path.
    v_body := v_body || format($f$
  %1$s TG_OP = %2$L then
    insert into ballast.cache_invalidation_inbox (tags)
    select array[%4$s] from %3$s d
    where (select count(*) from %5$s) <= %8$s;
    if found then
      return null;
    end if;
    insert into ballast.cache_invalidation_inbox (tags)
    select array_agg(v.tag) from %3$s d, lateral (values %4$s) as v(tag)
    where (select count(*) from %5$s) <= %6$s
    having count(*) > 0;
    if found then
      return null;
    end if;
    select count(*) into n from %5$s;
    if n <= %6$s then
      return null;  -- no rows, or no tag rendered
    end if;
    insert into ballast.cache_invalidation_inbox (tags)
    select array_agg(distinct t.tag) from (
        %7$s) as t(tag)
    where t.tag is not null
    having count(*) > 0;$f$,
      case v_op when 'INSERT' then 'if' else 'elsif' end, v_op, v_src, array_to_string(v_row_exprs, ', '),
      v_count_src, v_uncounted_max, array_to_string(v_parts, E'\n        union all '), least(16, v_uncounted_max));
  end loop;

  v_fn_src := format($f$
declare
  n bigint;
begin%s
  else -- TRUNCATE
    insert into ballast.cache_invalidation_inbox (tags) values (%L::text[]);
  end if;
  return null;
end;
$f$, v_body, v_fixed);
  -- Templates are literal text in the body and may contain '$': dollar-quote it with a tag it does not contain.
  v_quote := '$fn$';
  i := 0;
  while position(v_quote in v_fn_src) > 0 loop
    i := i + 1;
    v_quote := format('$fn%s$', i);
  end loop;
  execute format('create or replace function ballast.%I() returns trigger as %s%s%s language plpgsql volatile',
    v_fn, v_quote, v_fn_src, v_quote);
  execute format('comment on function ballast.%I() is %L', v_fn,
    format('Generated by ballast.invalidate_on_change(%s, %s, %s): re-run that to change it, stop_invalidating() to remove it.',
           (select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl),
           tags, collapse_above));
  -- The trigger function runs as the writer (SECURITY DEFINER cost a single-row UPDATE ~8 us of its
  -- ~20, bench invalidation part 2); the inbox lets any role append, from inside a trigger only. It is
  -- owned by the inbox owner so only that role (and superusers) can replace it.
  select r.rolname into v_owner from pg_class c join pg_roles r on r.oid = c.relowner
  where c.oid = 'ballast.cache_invalidation_inbox'::regclass;
  execute format('alter function ballast.%I() owner to %I', v_fn, v_owner);
  execute format('revoke all on function ballast.%I() from public', v_fn);

  -- ensure_statement_triggers (sql/kit.sql): the same registration again (an app's re-applied definitions do it on
  -- every deploy) keeps the triggers and takes no lock on the table
  perform ballast.ensure_statement_triggers(tbl, '_500_invalidate_cache_', format('ballast.%I()', v_fn), 'ballast_new', 'ballast_old');
  if v_old_fn is not null and v_old_fn <> v_fn then
    execute format('drop function if exists ballast.%I()', v_old_fn);
  end if;

  insert into ballast.cache_invalidation_triggers as t (tbl, tags, collapse_above, function_name)
  values (tbl, tags, collapse_above, v_fn)
  on conflict on constraint cache_invalidation_triggers_pkey do update
    set tags = excluded.tags, collapse_above = excluded.collapse_above, function_name = excluded.function_name,
        registered_at = now();
end;
$$ language plpgsql volatile set client_min_messages = warning; -- no "trigger does not exist, skipping" notices
comment on function ballast.invalidate_on_change(regclass, text[], int) is
  E'Enqueue cache tags when rows of a table change: templates like ''fund:{id}'' are filled from OLD and NEW rows by statement-level triggers; above collapse_above distinct tags per template one statement enqueues the collapsed tag (placeholders removed, or the tag after =>). Unknown columns raise 42703.';

---- stop_invalidating
---- Removes the triggers and generated function that invalidate_on_change installed on a table.
create or replace function ballast.stop_invalidating(tbl regclass)
returns boolean as $$
declare
  v_fn text;
begin
  perform ballast.assert_relation(tbl, 'stop_invalidating');
  delete from ballast.cache_invalidation_triggers t where t.tbl = stop_invalidating.tbl returning t.function_name into v_fn;
  execute format('drop trigger if exists _500_invalidate_cache_insert on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_update on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_delete on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_truncate on %s', tbl);
  if v_fn is not null then
    execute format('drop function if exists ballast.%I()', v_fn);
  end if;
  return v_fn is not null;
end;
$$ language plpgsql volatile set client_min_messages = warning;
comment on function ballast.stop_invalidating(regclass) is
  E'Undo invalidate_on_change() on a table: drop its triggers and generated function. False when it was not registered.';

---- merge_cache_invalidation_inbox
---- Moves inbox rows into the queue, skipping tags that an unclaimed pending row already covers.
create or replace function ballast.merge_cache_invalidation_inbox(max_rows int default 10000)
returns int as $$
declare
  v_n int;
begin
  if max_rows is null or max_rows < 1 then
    raise exception using errcode = '22023', message = format('max_rows must be at least 1, got %s', coalesce(max_rows::text, 'null'));
  end if;
  -- skip locked: concurrent drains merge different inbox rows instead of waiting for each other
  with moved as (
    delete from ballast.cache_invalidation_inbox i
    where i.ctid = any (array(select x.ctid from ballast.cache_invalidation_inbox x limit max_rows for update skip locked))
    returning i.tags, i.enqueued_at
  ), t as (
    select u.tag, min(m.enqueued_at) as enqueued_at
    from moved m cross join lateral unnest(m.tags) as u(tag)
    where length(u.tag) between 1 and 512   -- NULL: a NULL placeholder, no tag
      and u.tag !~ ballast.cache_tag_forbidden_pattern()  -- the generated triggers never append one (check_cache_tag)
    group by u.tag
  )
  -- Only a row nobody holds a claim on absorbs a new change. A claimed row stays claimed after its lease
  -- runs out (leased_until is cleared by ack and fail only): its worker may still be sending the tag from
  -- before this change, and its ack would then mark the change delivered.
  insert into ballast.cache_invalidation_queue (tag, enqueued_at, next_attempt_at)
  select t.tag, t.enqueued_at, now() from t
  where (select true from ballast.cache_invalidation_queue q
         where q.tag = t.tag and q.processed_at is null
           and q.leased_until is null
           and q.enqueued_at > now() - interval '1 minute' limit 1) is null;
  get diagnostics v_n = row_count;
  return v_n;
end;
$$ language plpgsql volatile set jit = off;
comment on function ballast.merge_cache_invalidation_inbox(int) is
  E'Move up to max_rows inbox rows (one per triggering statement) into cache_invalidation_queue, skipping tags an unclaimed pending row enqueued within the last minute already covers (a claimed row never absorbs a change, even after its lease ran out); drops tags check_cache_tag() would refuse; returns the queue rows added. drain_cache_invalidation_queue() calls it.';

---- drain_cache_invalidation_queue
---- Merges the inbox, then claims up to batch_size due rows for lease_seconds (for update skip locked).
create or replace function ballast.drain_cache_invalidation_queue(batch_size int, lease_seconds int)
returns table (id bigint, tag text, attempts int) as $$
#variable_conflict use_column
begin
  if batch_size is null or batch_size not between 1 and 10000 then
    raise exception using errcode = '22023',
      message = format('batch_size must be 1..10000, got %s', coalesce(batch_size::text, 'null'));
  end if;
  if lease_seconds is null or lease_seconds not between 1 and 86400 then
    raise exception using errcode = '22023',
      message = format('lease_seconds must be 1..86400, got %s', coalesce(lease_seconds::text, 'null')),
      hint = 'Longer than one delivery takes; a crashed consumer''s rows come back after it.';
  end if;
  -- The worker's bookkeeping commits without waiting for the WAL flush: a claim, ack or failure lost in a
  -- crash only means a delivery repeats, which at-least-once allows. (This transaction only: the inbox
  -- rows it merges were committed by their writers with the writers' own setting.)
  perform set_config('synchronous_commit', 'off', true);
  perform ballast.merge_cache_invalidation_inbox(greatest(batch_size, 1000));
  -- = any(array(...)), not a join: the planner may hash-join a CTE against the whole queue
  return query
    update ballast.cache_invalidation_queue q
       set next_attempt_at = now() + make_interval(secs => lease_seconds),
           leased_until = now() + make_interval(secs => lease_seconds),
           attempts = q.attempts + 1
     where q.id = any (array(
             select d.id from ballast.cache_invalidation_queue d
             where d.processed_at is null and d.next_attempt_at <= now()
             order by d.id   -- enqueue order; leased and backing-off rows are skipped by the filter
             limit batch_size
             for update skip locked))
    returning q.id, q.tag, q.attempts;
end;
$$ language plpgsql volatile set jit = off
-- SECURITY DEFINER: ballast's worker calls it as ballast_worker_login, which has no rights on the queue
security definer set search_path = pg_catalog, pg_temp
-- Claim in id order by walking the pending index, whatever the statistics say: right after a burst of
-- inserts they still say "empty", and a bitmap scan plus sort of every pending row per claim is 3x slower.
-- The same for the update of the claimed ids: without enable_seqscan = off it scanned the whole queue.
set enable_sort = off set enable_bitmapscan = off set enable_seqscan = off;
comment on function ballast.drain_cache_invalidation_queue(int, int) is
  E'Merge the trigger inbox, then claim up to batch_size due cache tags for lease_seconds (skip locked, so consumers run side by side). Ack or fail them; unacknowledged rows come back when the lease ends.';

---- ack_cache_invalidations
---- Marks claimed rows delivered, fenced by the claim: each id with the attempts its drain returned.
-- A worker that outlived its lease must not ack a row another worker has claimed since (attempts moved
-- on); the merge never folds a change into a claimed row, so the claim a worker acks covers exactly the
-- changes it sent.
drop function if exists ballast.ack_cache_invalidations(bigint[]);  -- 0.2.0's unfenced form
create or replace function ballast.ack_cache_invalidations(ids bigint[], claim_attempts int[])
returns int as $$
declare
  v_n int;
begin
  perform ballast.check_cache_claims('ack_cache_invalidations', ids, claim_attempts);
  perform set_config('synchronous_commit', 'off', true); -- a lost ack repeats a delivery, nothing worse
  -- coalesce(...) rather than "processed_at is null": that would let the planner, misled by statistics
  -- taken when few rows were pending, walk a whole partial index instead of looking the ids up
  update ballast.cache_invalidation_queue q
     set processed_at = now(), leased_until = null
    from unnest(ids, claim_attempts) as c(id, attempts)
   where q.id = c.id and q.attempts = c.attempts and coalesce(q.processed_at, 'infinity') = 'infinity';
  get diagnostics v_n = row_count;
  return v_n;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp  -- the worker's role has no table rights
set enable_seqscan = off;  -- look the batch up by id, even when stale statistics call the queue empty
comment on function ballast.ack_cache_invalidations(bigint[], int[]) is
  E'Mark claimed cache tags delivered: ids with the attempts drain_cache_invalidation_queue() returned for them (the claim). A row claimed again since (its lease ran out) is left alone. Returns how many rows were acked.';

---- check_cache_claims
---- Raises 22004/22023 unless ids and claim_attempts are two arrays of the same length without nulls.
create or replace function ballast.check_cache_claims(fn text, ids bigint[], claim_attempts int[])
returns void as $$
begin
  if ids is null or claim_attempts is null then
    raise exception using errcode = '22004',
      message = format('%s: ids and claim_attempts must not be null, got %s and %s', fn,
                       coalesce(left(ids::text, 60), 'null'), coalesce(left(claim_attempts::text, 60), 'null')),
      hint = 'Pass the id and attempts columns drain_cache_invalidation_queue() returned, as two arrays.';
  end if;
  if cardinality(ids) <> cardinality(claim_attempts) then
    raise exception using errcode = '22023',
      message = format('%s: ids and claim_attempts must be the same length (one claim per id), got %s ids and %s attempts',
                       fn, cardinality(ids), cardinality(claim_attempts)),
      hint = 'Pass the id and attempts columns drain_cache_invalidation_queue() returned, in the same order.';
  end if;
  if array_position(ids, null) is not null or array_position(claim_attempts, null) is not null then
    raise exception using errcode = '22004',
      message = format('%s: ids and claim_attempts must not contain null, got null at %s', fn,
                       coalesce('ids[' || array_position(ids, null) || ']', 'claim_attempts[' || array_position(claim_attempts, null) || ']')),
      hint = 'Pass the id and attempts columns drain_cache_invalidation_queue() returned, as two arrays.';
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.check_cache_claims(text, bigint[], int[]) is
  E'Raise 22004 (null, or a null element) or 22023 (lengths differ) unless ids and claim_attempts describe claims: one attempts value per id.';

---- fail_cache_invalidations
---- Records a failed delivery of claims: exponential backoff with a cap, dead letter after max_retries
---- failures, or at once when the sink refused the tags for good (permanent).
drop function if exists ballast.fail_cache_invalidations(bigint[], text, int, int);  -- 0.2.0's unfenced form
create or replace function ballast.fail_cache_invalidations(ids bigint[], claim_attempts int[], error text,
  backoff_base_ms int default 1000, backoff_max_ms int default 600000, permanent boolean default false)
returns table (rescheduled int, dead_lettered int, next_attempt_at timestamptz) as $$
#variable_conflict use_column
declare
  v_error text := left(coalesce(nullif(error, ''), 'delivery failed (no error given)'), 2000);
begin
  perform ballast.check_cache_claims('fail_cache_invalidations', ids, claim_attempts);
  if backoff_base_ms is null or backoff_base_ms < 1 or backoff_max_ms is null or backoff_max_ms < backoff_base_ms then
    raise exception using errcode = '22023',
      message = format('backoff must satisfy 1 <= backoff_base_ms <= backoff_max_ms, got %s and %s', backoff_base_ms, backoff_max_ms);
  end if;
  if permanent is null then
    raise exception using errcode = '22004', message = 'fail_cache_invalidations: permanent must be true or false, got null',
      hint = 'true when the sink refused these tags for good (a 4xx): they become dead letters at once.';
  end if;
  perform set_config('synchronous_commit', 'off', true); -- a lost failure repeats a delivery, nothing worse
  with gone as (
    delete from ballast.cache_invalidation_queue q
     using unnest(ids, claim_attempts) as c(id, attempts)
     where q.id = c.id and q.attempts = c.attempts and coalesce(q.processed_at, 'infinity') = 'infinity'
       and (permanent or q.retry_count + 1 >= q.max_retries)
    returning q.id, q.tag, q.enqueued_at, q.retry_count, q.attempts
  )
  insert into ballast.cache_invalidation_dead_letters (id, tag, enqueued_at, retry_count, attempts, last_error)
  select g.id, g.tag, g.enqueued_at, g.retry_count + 1, g.attempts, v_error from gone g;
  get diagnostics dead_lettered = row_count;
  -- failure n (1-based) waits base * 2^(n-1), at most backoff_max_ms
  with r as (
    update ballast.cache_invalidation_queue q
       set retry_count = q.retry_count + 1,
           last_error = v_error,
           leased_until = null,
           next_attempt_at = now() + make_interval(secs => least(backoff_max_ms::float8,
                                 backoff_base_ms * power(2::float8, least(q.retry_count, 40))) / 1000)
      from unnest(ids, claim_attempts) as c(id, attempts)
     where q.id = c.id and q.attempts = c.attempts
       and coalesce(q.processed_at, 'infinity') = 'infinity'  -- see ack_cache_invalidations
    returning q.next_attempt_at
  )
  select count(*)::int, min(r.next_attempt_at) into rescheduled, next_attempt_at from r;
  return next;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp  -- the worker's role has no table rights
set enable_seqscan = off;  -- look the batch up by id, even when stale statistics call the queue empty
comment on function ballast.fail_cache_invalidations(bigint[], int[], text, int, int, boolean) is
  E'Record a failed delivery of claimed cache tags (ids with the attempts drain_cache_invalidation_queue() returned; a row claimed again since is left alone): retry after backoff_base_ms * 2^(retry_count-1), capped at backoff_max_ms; after max_retries failures, or at once when permanent (the sink refused the tags for good), the row moves to cache_invalidation_dead_letters.';

---- requeue_cache_invalidation_dead_letters
---- Puts dead letters (all, or the given ids) back into the queue.
create or replace function ballast.requeue_cache_invalidation_dead_letters(ids bigint[] default null)
returns int as $$
declare
  v_n int;
begin
  with d as (
    delete from ballast.cache_invalidation_dead_letters dl where ids is null or dl.id = any(ids) returning dl.tag
  )
  insert into ballast.cache_invalidation_queue (tag) select distinct d.tag from d;
  get diagnostics v_n = row_count;
  if v_n > 0 then
    perform ballast.wake_cache_invalidation_worker();
  end if;
  return v_n;
end;
$$ language plpgsql volatile;
comment on function ballast.requeue_cache_invalidation_dead_letters(bigint[]) is
  E'Move dead-lettered cache tags (all, or those with the given ids) back into the queue with fresh retries; returns how many tags were queued.';

-- Delivered rows are deleted by the cleanup capability's built-in policy on cache_invalidation_queue
-- (an hour after delivery, every 5 minutes, in batches): one owner for every retention rule.
drop function if exists ballast.cleanup_cache_invalidations(interval);

-- Monitoring: one row.
select ballast.ensure_view('ballast.cache_invalidation_stats', $view$
  select count(*) filter (where q.leased_until is null or q.leased_until < now()) as pending,
         count(*) filter (where q.next_attempt_at <= now()) as due,
         count(*) filter (where q.leased_until >= now()) as leased,
         count(*) filter (where q.retry_count > 0) as retried,
         (select count(*) from ballast.cache_invalidation_dead_letters) as dead,
         (select count(*) from ballast.cache_invalidation_inbox) as inbox,
         now() - least(min(q.enqueued_at), (select min(i.enqueued_at) from ballast.cache_invalidation_inbox i)) as oldest_pending_age,
         (select count(*) from ballast.cache_invalidation_queue d
           where d.processed_at > now() - interval '1 hour') as delivered_last_hour
  from ballast.cache_invalidation_queue q
  where q.processed_at is null
$view$);
comment on view ballast.cache_invalidation_stats is
  E'Cache invalidation at a glance: pending queue rows (not leased), due now, leased by a worker, retried (failed at least once), dead letters, inbox rows not yet merged, age of the oldest pending tag, delivered in the last hour.';

---- verify__invalidation
---- Checks: registered tables still have their triggers; no dead letters older than a day (a warning).
create or replace function ballast.verify__invalidation()
returns table (check_name text, ok boolean, detail text) as $$
#variable_conflict use_column
begin
  -- PL/pgSQL, not SQL: its body is checked when it runs, so sql/ORDER may list this file before verify.sql
  return query
  with want as (
    select t.tbl, t.function_name, t.tags, t.collapse_above, c.oid is not null as table_exists,
           array(select n from unnest(array['_500_invalidate_cache_insert', '_500_invalidate_cache_update',
                                            '_500_invalidate_cache_delete', '_500_invalidate_cache_truncate']) n
                 where not exists (select 1 from pg_trigger g join pg_proc p on p.oid = g.tgfoid
                                   where g.tgrelid = t.tbl and g.tgname = n and g.tgenabled <> 'D'
                                     and p.proname = t.function_name
                                     and p.pronamespace = 'ballast'::regnamespace)) as missing
    from ballast.cache_invalidation_triggers t
    left join pg_class c on c.oid = t.tbl
  )
  select 'invalidate_on_change ' || case when w.table_exists then ballast.qualified_name(w.tbl) else 'table oid ' || w.tbl::oid end,
         w.table_exists and cardinality(w.missing) = 0,
         case when not w.table_exists then
                format('the table (oid %s) no longer exists: delete from ballast.cache_invalidation_triggers where tbl = %s', w.tbl::oid, w.tbl::oid)
              when cardinality(w.missing) > 0 then
                format('missing or disabled: %s; re-run select ballast.invalidate_on_change(%L, %L, %s)',
                       array_to_string(w.missing, ', '), ballast.qualified_name(w.tbl), w.tags, w.collapse_above)
              else format('4 triggers, tags %s', array_to_string(w.tags, ' ')) end
  from want w
  union all
  -- triggers left behind on a table that is no longer registered
  select 'invalidate_on_change orphan trigger ' || g.tgname || ' on ' || ballast.qualified_name(g.tgrelid), false,
         format('not registered in ballast.cache_invalidation_triggers: drop trigger %I on %s', g.tgname, g.tgrelid::regclass)
  from pg_trigger g
  where g.tgname like '\_500\_invalidate\_cache\_%'
    and not exists (select 1 from ballast.cache_invalidation_triggers t where t.tbl = g.tgrelid)
  union all
  -- A warning, not a failure: old dead letters mean a sink kept failing, not that this database is broken.
  select 'cache invalidation dead letters older than a day', true,
         case when d.old > 0 then
                format('warning: %s dead letters older than a day (oldest failed %s: %s); fix the sink, then select ballast.requeue_cache_invalidation_dead_letters()',
                       d.old, d.oldest, d.oldest_error)
              else format('none (%s dead letters in total)', d.total) end
  from (select count(*) filter (where failed_at < now() - interval '1 day') as old, count(*) as total,
               min(failed_at) as oldest,
               (select left(last_error, 200) from ballast.cache_invalidation_dead_letters order by failed_at limit 1) as oldest_error
        from ballast.cache_invalidation_dead_letters) d;
end;
$$ language plpgsql stable;
comment on function ballast.verify__invalidation() is
  E'Invalidation checks for verify_migration_success(): every invalidate_on_change table keeps its triggers, no orphan triggers, and a warning for dead letters older than a day.';

select ballast.unschedule_job('ballast_cache_invalidation_cleanup'); -- the job that did it before

---- metrics__cache_invalidation
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): pending, oldest pending age, dead letters.
create or replace function ballast.metrics__cache_invalidation()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_cache_invalidation_pending', 'Cache-invalidation tags not yet delivered', '{}'::jsonb, count(*)::float8
  from ballast.cache_invalidation_queue q where q.processed_at is null
  union all
  select 'ballast_cache_invalidation_oldest_pending_seconds', 'Age of the oldest undelivered cache-invalidation tag (0 when none)', '{}'::jsonb,
         coalesce(extract(epoch from now() - min(q.enqueued_at)), 0)::float8
  from ballast.cache_invalidation_queue q where q.processed_at is null
  union all
  select 'ballast_cache_invalidation_dead_letters', 'Cache-invalidation tags that used up their retries', '{}'::jsonb, count(*)::float8
  from ballast.cache_invalidation_dead_letters
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__cache_invalidation() is
  E'Gauges for /metrics: undelivered tags, age of the oldest, dead letters.';
