-- Audit seals (capability: audit_seal): a hash chain over ballast.audit_log, so that a row deleted, altered or
-- inserted after it was sealed is found, even when the append-only triggers were switched off (a superuser
-- with session_replication_role = replica, or the owner disabling them).
--
-- Nothing runs on the write path. Every minute pg_cron runs seal_audit_log(): it takes the audit rows whose
-- transaction had ended when it looked (txid below the xmin of its snapshot) and that no seal covers yet,
-- digests each row, and appends one row to ballast.audit_seals: their ids, the digests, the txid range and
-- a sha256 over all of it and the previous seal's hash. A row whose transaction was still running is left
-- for a later seal (its txid is at or above that xmin), so commits out of id order are never skipped.
-- The retention path (sql/cleanup.sql, through the audit log's guards in sql/audit.sql) appends a 'prune'
-- row naming the sealed rows it deleted. verify_audit_log() recomputes everything; the worker logs each
-- seal's hash and /metrics shows the newest, so a chain rewritten as a whole differs from what left the
-- database. What this does not prove: that rows not yet sealed (the last minute) are genuine, or that a
-- chain nobody compared with the copies outside was not rebuilt.

---- audit_row_digest
---- The md5 of one audit row as the seals record it: every column, occurred_at as epoch seconds (no time zone or DateStyle in it).
create or replace function ballast.audit_row_digest(a ballast.audit_log)
returns bytea as $$
  select decode(md5(row(a.id, extract(epoch from a.occurred_at), a.table_name, a.op, a.record_id, a.org_id, a.old_values, a.new_values,
                        a.actor_id, a.actor_role, a.request_id, a.txid, a.application_name)::text), 'hex')
$$ language sql stable parallel safe;
comment on function ballast.audit_row_digest(ballast.audit_log) is
  E'The 16-byte md5 digest of one ballast.audit_log row that ballast.audit_seals records (every column; occurred_at as epoch seconds, independent of the session''s time zone).';

---- audit_seal_hash
---- The sha256 of one row of ballast.audit_seals, chained to the previous row's hash.
create or replace function ballast.audit_seal_hash(prev_hash bytea, kind text, sealed_at timestamptz, from_txid bigint, to_txid bigint,
                                                   ids bigint[], digests bytea[])
returns bytea as $$
  select sha256(coalesce(prev_hash, '\x'::bytea)
                || convert_to(concat_ws('|', kind, extract(epoch from sealed_at), coalesce(from_txid::text, '-'), coalesce(to_txid::text, '-')), 'UTF8')
                || array_send(ids) || array_send(digests))
$$ language sql stable parallel safe;
comment on function ballast.audit_seal_hash(bytea, text, timestamptz, bigint, bigint, bigint[], bytea[]) is
  E'sha256(prev_hash || kind | sealed_at | from_txid | to_txid || ids || digests): the hash of one ballast.audit_seals row, chained to the previous one.';

---- append_audit_seal
---- Appends one row to the chain (the caller holds the chain lock). Returns its id.
create or replace function ballast.append_audit_seal(kind text, from_txid bigint, to_txid bigint, snapshot_xmax bigint, next_id bigint,
                                                     ids bigint[], digests bytea[])
returns bigint as $$
  insert into ballast.audit_seals (kind, from_txid, to_txid, snapshot_xmax, next_id, row_count, ids, digests, prev_hash, hash)
  select append_audit_seal.kind, append_audit_seal.from_txid, append_audit_seal.to_txid, append_audit_seal.snapshot_xmax, append_audit_seal.next_id,
         cardinality(append_audit_seal.ids), append_audit_seal.ids, append_audit_seal.digests, p.hash,
         ballast.audit_seal_hash(p.hash, append_audit_seal.kind, now(), append_audit_seal.from_txid, append_audit_seal.to_txid,
                                 append_audit_seal.ids, append_audit_seal.digests)
    from (select (select s.hash from ballast.audit_seals s order by s.id desc limit 1) as hash) p
  returning id
$$ language sql volatile;
comment on function ballast.append_audit_seal(text, bigint, bigint, bigint, bigint, bigint[], bytea[]) is
  E'Internal to seal_audit_log() and the retention path: appends one row to ballast.audit_seals, hashed and chained to the last one. The caller locks the chain first (lock table ballast.audit_seals in share row exclusive mode).';
revoke all on function ballast.append_audit_seal(text, bigint, bigint, bigint, bigint, bigint[], bytea[]) from public;

---- seal_audit_log
---- Seals the audit rows committed since the last seal (pg_cron, every minute). Returns the new seal, if any.
-- The rows of a seal: from_txid <= txid < to_txid, where from_txid is the previous seal's to_txid and to_txid
-- the xmin of this seal's snapshot. Every transaction below that xmin has ended, so its committed rows are
-- all visible and no more can come; a transaction still running has a txid at or above it, and its rows
-- belong to a later seal. Where to start reading: rows of a transaction whose txid was assigned after an
-- earlier seal's snapshot (txid >= that seal's snapshot_xmax) have ids above that seal's next_id (the id
-- sequence read before the snapshot; the audit trigger draws ids after its transaction has a txid), so the
-- scan is an index range from the newest such seal's next_id, not the whole log.
create or replace function ballast.seal_audit_log()
returns table (seal_id bigint, rows_sealed int, from_txid bigint, to_txid bigint) as $$
declare
  lo bigint;
  hi bigint;
  xmax8 bigint;
  seq_id bigint;
  floor_id bigint;
  snap pg_snapshot;
  v_ids bigint[];
  v_digests bytea[];
begin
  lock table ballast.audit_seals in share row exclusive mode;  -- one chain: seals and prunes append one at a time
  select coalesce(max(s.to_txid), 0) into lo from ballast.audit_seals s where s.kind = 'seal';
  select case when q.is_called then q.last_value else q.last_value - 1 end into seq_id from ballast.audit_log_id_seq q;  -- before the snapshot
  snap := pg_current_snapshot();
  hi := pg_snapshot_xmin(snap)::text::bigint;
  xmax8 := pg_snapshot_xmax(snap)::text::bigint;
  if hi <= lo then
    return;
  end if;
  select s.next_id into floor_id from ballast.audit_seals s
   where s.kind = 'seal' and s.snapshot_xmax <= lo order by s.id desc limit 1;
  select coalesce(array_agg(a.id order by a.id), '{}'), coalesce(array_agg(ballast.audit_row_digest(a) order by a.id), '{}')
    into v_ids, v_digests
    from ballast.audit_log a
   where a.id > coalesce(floor_id, 0) and a.txid >= lo and a.txid < hi;
  if cardinality(v_ids) = 0 then
    return;  -- nothing new: no seal (the next one starts from the same from_txid)
  end if;
  seal_id := ballast.append_audit_seal('seal', lo, hi, xmax8, seq_id, v_ids, v_digests);
  rows_sealed := cardinality(v_ids);
  from_txid := lo;
  to_txid := hi;
  return next;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp set jit = off set work_mem = '64MB';
comment on function ballast.seal_audit_log() is
  E'Seals the audit rows whose transactions ended since the last seal into ballast.audit_seals (ids, a digest of each, sha256 chained to the previous seal); pg_cron runs it every minute. Rows of transactions still running are sealed by a later run. Returns the seal written, or no row when there was nothing new.';

---- tg_audit_log__record_prune
---- On the retention path, after a DELETE on the audit log: a 'prune' row names the sealed rows deleted.
-- The DELETE already passed the guards (sql/audit.sql): it is the cleanup path and the rows are past
-- retention. A DELETE with the triggers off (session_replication_role = replica) leaves no prune row, so
-- verify_audit_log() reports those rows as deleted.
create or replace function ballast.tg_audit_log__record_prune()
returns trigger as $$
declare
  sealed_below bigint;
  v_ids bigint[];
  v_digests bytea[];
begin
  lock table ballast.audit_seals in share row exclusive mode;
  select max(s.to_txid) into sealed_below from ballast.audit_seals s where s.kind = 'seal';
  select array_agg(o.id order by o.id), array_agg(ballast.audit_row_digest(o) order by o.id) into v_ids, v_digests
    from old_table o where o.txid < sealed_below;
  if v_ids is not null then
    perform ballast.append_audit_seal('prune', null, null, null, null, v_ids, v_digests);
  end if;
  return null;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__record_prune() is
  E'After a retention DELETE on ballast.audit_log: appends a ''prune'' row to ballast.audit_seals naming the sealed rows deleted, so verify_audit_log() accepts their absence.';

select ballast.ensure_trigger('ballast.audit_log', '_910_seal_prune',
  'after delete on ballast.audit_log referencing old table as old_table for each statement execute function ballast.tg_audit_log__record_prune()');

---- tg_audit_seals__append_only
---- The chain is written only by seal_audit_log() and the retention path: UPDATE, DELETE and TRUNCATE always fail.
create or replace function ballast.tg_audit_seals__append_only()
returns trigger as $$
begin
  raise exception using errcode = '42501',
    message = format('ballast.audit_seals is append-only: %s is not allowed, for any role', TG_OP),
    hint = 'Seals are appended by ballast.seal_audit_log(); they are kept, as the record of what was sealed, after retention deletes audit rows.';
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_seals__append_only() is
  E'Keeps ballast.audit_seals append-only: UPDATE, DELETE and TRUNCATE always fail.';
select ballast.ensure_trigger('ballast.audit_seals', '_100_append_only_update',
  'before update on ballast.audit_seals for each statement execute function ballast.tg_audit_seals__append_only()');
select ballast.ensure_trigger('ballast.audit_seals', '_100_append_only_delete',
  'before delete on ballast.audit_seals for each statement execute function ballast.tg_audit_seals__append_only()');
select ballast.ensure_trigger('ballast.audit_seals', '_100_append_only_truncate',
  'before truncate on ballast.audit_seals for each statement execute function ballast.tg_audit_seals__append_only()');
select ballast.owner_only_policy('ballast.audit_seals');

---- verify_audit_log
---- Recomputes the chain and every sealed row; names the seal and the first bad id of each kind of damage.
-- One pass over the seals (the chain) and one over the audit rows of the sealed txid range (rows), joined
-- on id with what the seals recorded:
--   chain:    each seal's prev_hash is the previous row's hash and its hash recomputes; the txid ranges follow on;
--   deleted:  an id a seal recorded that is gone, without a prune row for it;
--   altered:  a row whose digest differs from the one recorded;
--   inserted: a row in a sealed txid range that no seal recorded (written after sealing, or forged).
-- since: only the seals written since then, and their rows (null: all).
create or replace function ballast.verify_audit_log(since timestamptz default null)
returns table (check_name text, ok boolean, detail text) as $$
declare
  chain record;
  lo bigint;
  hi bigint;
  seals int;
  r record;
begin
  if since = 'infinity' or since = '-infinity' or since > now() then
    raise exception using errcode = '22023',
      message = format('verify_audit_log: since must be a time in the past (or null for everything), got %s', since);
  end if;
  -- the chain, always whole: a seal's link to its predecessor is what makes the newer ones trustworthy
  select count(*) as n,
         min(s.id) filter (where s.prev_hash is distinct from s.lag_hash) as bad_link,
         min(s.id) filter (where s.hash <> ballast.audit_seal_hash(s.prev_hash, s.kind, s.sealed_at, s.from_txid, s.to_txid, s.ids, s.digests)) as bad_hash,
         min(s.id) filter (where s.kind = 'seal' and s.from_txid <> coalesce(s.lag_to, 0)) as bad_range
    into chain
    from (select x.*, lag(x.hash) over (order by x.id) as lag_hash,
                 lag(x.to_txid) over (partition by x.kind order by x.id) as lag_to
            from ballast.audit_seals x) s;
  check_name := 'audit seal chain';
  ok := chain.bad_link is null and chain.bad_hash is null and chain.bad_range is null;
  detail := case
    when chain.bad_link is not null then format('seal %s: prev_hash is not the hash of the row before it (chain broken or rewritten from there)', chain.bad_link)
    when chain.bad_hash is not null then format('seal %s: its hash does not match its contents (altered)', chain.bad_hash)
    when chain.bad_range is not null then format('seal %s: its txid range does not follow on from the seal before it', chain.bad_range)
    else format('%s seals link up', chain.n) end;
  return next;

  select min(s.from_txid), max(s.to_txid), count(*) into lo, hi, seals
    from ballast.audit_seals s where s.kind = 'seal' and (since is null or s.sealed_at >= since);
  create temporary table if not exists ballast_verify_rows (id bigint, seal_id bigint, recorded bytea, actual bytea, pruned boolean, found boolean) on commit drop;
  truncate ballast_verify_rows;
  insert into ballast_verify_rows
  select coalesce(e.id, a.id), coalesce(e.seal_id, (select s.id from ballast.audit_seals s where s.kind = 'seal' and a.txid >= s.from_txid and a.txid < s.to_txid)),
         e.digest, a.digest, p.id is not null, a.id is not null
    from (select u.id, u.digest, s.id as seal_id from ballast.audit_seals s, unnest(s.ids, s.digests) u(id, digest)
           where s.kind = 'seal' and (since is null or s.sealed_at >= since)) e
    full join (select l.id, l.txid, ballast.audit_row_digest(l) as digest from ballast.audit_log l where l.txid >= lo and l.txid < hi) a on a.id = e.id
    left join (select distinct unnest(s.ids) as id from ballast.audit_seals s where s.kind = 'prune') p on p.id = coalesce(e.id, a.id)
   where e.id is null or a.id is null or e.digest <> a.digest;

  select count(*) as n, min(v.id) as first_id, (array_agg(v.seal_id order by v.id))[1] as seal_id into r
    from ballast_verify_rows v where v.recorded is not null and not v.found and not v.pruned;
  check_name := 'audit rows deleted'; ok := r.n = 0;
  detail := case when r.n = 0 then format('every row of %s seals is present or pruned by retention', seals)
                 else format('seal %s: row %s is gone (%s sealed rows missing with no retention prune)', r.seal_id, r.first_id, r.n) end;
  return next;
  select count(*) as n, min(v.id) as first_id, (array_agg(v.seal_id order by v.id))[1] as seal_id into r
    from ballast_verify_rows v where v.recorded is not null and v.found;
  check_name := 'audit rows altered'; ok := r.n = 0;
  detail := case when r.n = 0 then 'every sealed row matches its digest'
                 else format('seal %s: row %s differs from what was sealed (%s rows altered)', r.seal_id, r.first_id, r.n) end;
  return next;
  select count(*) as n, min(v.id) as first_id, (array_agg(v.seal_id order by v.id))[1] as seal_id into r
    from ballast_verify_rows v where v.recorded is null;
  check_name := 'audit rows inserted after sealing'; ok := r.n = 0;
  detail := case when r.n = 0 then 'no row in a sealed range that its seal does not list'
                 else format('seal %s: row %s lies in its txid range but was not sealed (%s rows inserted afterwards)', r.seal_id, r.first_id, r.n) end;
  return next;
  check_name := 'audit rows not sealed yet'; ok := true;
  detail := format('%s rows after the last seal (txid >= %s) wait for the next seal_audit_log()',
                   (select count(*) from ballast.audit_log l where l.txid >= coalesce((select max(s.to_txid) from ballast.audit_seals s where s.kind = 'seal'), 0)),
                   coalesce((select max(s.to_txid) from ballast.audit_seals s where s.kind = 'seal'), 0));
  return next;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp set jit = off set work_mem = '64MB';
comment on function ballast.verify_audit_log(timestamptz) is
  E'Checks the audit log against its seals: the chain links and recomputes (audit seal chain), and every sealed row is present or pruned by retention (audit rows deleted), unchanged (audit rows altered), and alone in its range (audit rows inserted after sealing). Names the seal and the first bad id. since: only seals written since then (null: all). 22023 for a future or infinite since.';

---- audit_seals_between
---- The seals written in a time window, with their hash in hex: what the worker logs, so each hash leaves the database.
create or replace function ballast.audit_seals_between(since timestamptz, until timestamptz)
returns table (seal_id bigint, sealed_at timestamptz, kind text, row_count int, first_id bigint, last_id bigint, hash text) as $$
begin
  if since is null or until is null or since > until or since = '-infinity' or until = 'infinity' then
    raise exception using errcode = case when since is null or until is null then '22004' else '22023' end,
      message = format('audit_seals_between: since and until must be finite times with since <= until, got %s and %s', since, until);
  end if;
  return query
    select s.id, s.sealed_at, s.kind, s.row_count, s.ids[1], s.ids[cardinality(s.ids)], encode(s.hash, 'hex')
      from ballast.audit_seals s where s.sealed_at > since and s.sealed_at <= until order by s.id;
end;
$$ language plpgsql stable security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.audit_seals_between(timestamptz, timestamptz) is
  E'The ballast.audit_seals rows written in (since, until], without their row lists: id, time, kind, rows, first and last id, hash in hex. For the worker''s log (ballast_log_audit_seals). SECURITY DEFINER: audit_seals is owner-only. 22004 for null, 22023 for since after until or an infinite bound.';
revoke all on function ballast.audit_seals_between(timestamptz, timestamptz) from public;

---- metrics__audit_seal
---- Gauges for /metrics: the newest seal (its hash as a label), its age, and rows waiting to be sealed.
create or replace function ballast.metrics__audit_seal()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_audit_last_seal_id', 'Id of the newest row of ballast.audit_seals; its hash in the label, to compare with the copies outside the database',
         jsonb_build_object('hash', encode(s.hash, 'hex'), 'kind', s.kind), s.id::float8
    from (select * from ballast.audit_seals order by id desc limit 1) s
  union all
  select 'ballast_audit_seconds_since_seal', 'Seconds since the newest seal (-1 when none)', '{}'::jsonb,
         coalesce(extract(epoch from now() - max(s.sealed_at)), -1)::float8
    from ballast.audit_seals s where s.kind = 'seal'
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__audit_seal() is
  E'Gauges for /metrics: the newest audit seal''s id with its hash as a label, and the seconds since the newest seal.';

---- verify__audit_seal
---- Cheap checks for verify_migration_success(): the last seals link up, and the pg_cron job is there.
create or replace function ballast.verify__audit_seal()
returns table (check_name text, ok boolean, detail text) as $$
declare
  bad bigint;
  n int;
  job record;
begin
  select count(*), min(s.id) filter (where s.prev_hash is distinct from s.lag_hash
                                     or s.hash <> ballast.audit_seal_hash(s.prev_hash, s.kind, s.sealed_at, s.from_txid, s.to_txid, s.ids, s.digests))
    into n, bad
    from (select x.*, lag(x.hash) over (order by x.id) as lag_hash
            from (select * from ballast.audit_seals order by id desc limit 21) x) s
   where s.lag_hash is not null or s.id = (select min(id) from ballast.audit_seals);
  return query select 'audit seals link up'::text, bad is null,
    case when bad is null then format('the last %s seals link up and recompute', n)
         else format('seal %s does not link to the one before it or does not recompute: run select * from ballast.verify_audit_log()', bad) end;
  if to_regclass('cron.job') is null then
    return query select 'audit seal cron job'::text, false, 'pg_cron is not installed in this database: seal_audit_log() never runs'::text;
  else
    execute $q$select j.jobid, j.active, j.schedule from cron.job j where j.jobname = 'ballast_seal_audit_log' order by j.jobid limit 1$q$ into job;
    return query select 'audit seal cron job'::text, coalesce(job.active, false),
      case when job.jobid is null then 'missing: sql/audit_seal.sql schedules ballast_seal_audit_log'
           when not job.active then format('job %s is inactive: select cron.alter_job(%s, active => true)', job.jobid, job.jobid)
           else format('job %s seals the audit log on %L', job.jobid, job.schedule) end;
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.verify__audit_seal() is
  E'Checks for verify_migration_success(): the last 20 audit seals link up and recompute, and the pg_cron job ballast_seal_audit_log is active. The full check is ballast.verify_audit_log().';

select ballast.schedule_job('ballast_seal_audit_log', '* * * * *', 'select ballast.seal_audit_log()');
