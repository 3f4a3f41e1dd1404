-- Rate limiting shared by every API process (capability: rate_limit): a token bucket per key in an
-- UNLOGGED table, taken with one statement so concurrent takes serialise on the bucket's row.
-- The API (as ballast_authenticator, outside any visitor's transaction) calls rate_limit_take().

select ballast.owner_only_policy('ballast.rate_limit_buckets');

---- rate_limit_take
---- Takes `cost` tokens from a token bucket (created full on first use); says whether it was allowed.
create or replace function ballast.rate_limit_take(bucket text, capacity int, refill_per_second numeric, cost int default 1)
returns table (allowed boolean, remaining int, retry_after_ms int) as $$
declare
  at timestamptz := clock_timestamp();
  cap double precision := capacity;
  rate double precision := refill_per_second;
  left_over double precision;
  ok boolean;
begin
  if bucket is null or length(bucket) not between 1 and 200 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: bucket must be 1..200 characters, got %s', coalesce(length(bucket)::text, 'null')),
      hint = 'Name buckets like ''<class>:<subject>'', e.g. ''query:sub:<uuid>''.';
  end if;
  if capacity is null or capacity < 1 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: capacity must be at least 1, got %s', coalesce(capacity::text, 'null'));
  end if;
  if refill_per_second is null or refill_per_second <= 0 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: refill_per_second must be greater than 0, got %s', coalesce(refill_per_second::text, 'null'));
  end if;
  if cost is null or cost < 1 or cost > capacity then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: cost must be from 1 to capacity (%s), got %s', capacity, coalesce(cost::text, 'null')),
      hint = 'A cost above the capacity could never be allowed.';
  end if;

  -- One statement, so concurrent takes on one bucket serialise on its row lock and each sees the
  -- previous one's result (ON CONFLICT DO UPDATE works on the latest row version).
  insert into ballast.rate_limit_buckets as b (bucket, tokens, granted, updated_at, full_at)
  values (rate_limit_take.bucket, cap - cost, true, at, at + make_interval(secs => cost / rate))
  on conflict on constraint rate_limit_buckets_pkey do update set
    granted = least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost,
    tokens = least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at)))
             - case when least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost
                    then cost else 0 end,
    updated_at = at,
    full_at = at + make_interval(secs => (cap - (least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at)))
             - case when least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost
                    then cost else 0 end)) / rate)
  returning b.tokens, b.granted into left_over, ok;

  allowed := ok;
  remaining := floor(left_over)::int;
  retry_after_ms := case when ok then 0 else ceil((cost - left_over) / rate * 1000)::int end;
  return next;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.rate_limit_take(text, int, numeric, int) is
  E'Token bucket shared by every API process: takes cost tokens from bucket (capacity, refill_per_second), returns (allowed, remaining, retry_after_ms).';
revoke all on function ballast.rate_limit_take(text, int, numeric, int) from public;
grant execute on function ballast.rate_limit_take(text, int, numeric, int) to ballast_authenticator;

---- rate_limit_prune
---- Deletes buckets that have refilled completely (absent and full are the same), in small batches.
create or replace function ballast.rate_limit_prune(batch_size int default 10000)
returns int as $$
declare
  n int;
begin
  if batch_size is null or batch_size < 1 then
    raise exception using errcode = '22023',
      message = format('rate_limit_prune: batch_size must be at least 1, got %s', coalesce(batch_size::text, 'null'));
  end if;
  with doomed as (
    select ctid from ballast.rate_limit_buckets
    where full_at < clock_timestamp()
    limit batch_size
    for update skip locked
  )
  delete from ballast.rate_limit_buckets b using doomed
  where b.ctid = doomed.ctid and b.full_at < clock_timestamp();
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp;
comment on function ballast.rate_limit_prune(int) is
  E'Delete up to batch_size rate-limit buckets that are full again (pg_cron runs it every 10 minutes); returns how many.';

-- Full buckets are redundant: prune them every 10 minutes (pg_cron exists only in cron.database_name).
select ballast.schedule_job('ballast_rate_limit_prune', '*/10 * * * *', 'select ballast.rate_limit_prune()');

---- verify__rate_limit
---- The rate limiter's checks: bucket table unlogged, the prune job (its grant: verify__api).
create or replace function ballast.verify__rate_limit()
returns table (check_name text, ok boolean, detail text) as $$
begin
  return query
  select 'rate_limit: buckets table is unlogged'::text,
         c.relpersistence = 'u',
         case when c.relpersistence = 'u' then 'unlogged' else 'logged: every take would write WAL; alter table ballast.rate_limit_buckets set unlogged' end
  from pg_class c where c.oid = 'ballast.rate_limit_buckets'::regclass;
  if to_regnamespace('cron') is not null then
    -- dynamic: the cron schema does not exist in the shadow database
    return query execute $q$
      select 'rate_limit: prune scheduled'::text,
             exists (select 1 from cron.job where jobname = 'ballast_rate_limit_prune' and active),
             coalesce((select format('%s: %s', schedule, command) from cron.job where jobname = 'ballast_rate_limit_prune'),
                      'missing: re-run npm run migrate (sql/rate_limit.sql schedules it)')
    $q$;
  end if;
end;
$$ language plpgsql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.verify__rate_limit() is
  E'Rate-limit checks for verify_migration_success(): buckets table unlogged, prune job scheduled (verify__api checks that only the authenticator may run rate_limit_take).';
