-- Idempotency keys (capability: idempotency): exactly-once handling of retried requests, in PostgreSQL.
--
--   idempotency_begin(scope, key, request_hash)  → started | replay | in_progress | mismatch
--   ... the caller does the work ...
--   idempotency_complete(scope, key, status_code, response_body)   or   idempotency_release(scope, key)
--   (idempotency_extend(scope, key, lease) renews the lease of a holder that works longer than it)
--
-- The table (ballast.idempotency_keys) is in a committed migration. Who holds a key is recorded in
-- locked_by: the holder of the caller that got `started`, taken from the first of
--   1. the argument `holder` (each function's last, default null): one value per request or job, e.g. a
--      UUID, given to begin and again to complete/release/extend. The API does this.
--   2. the setting ballast.idempotency_owner, set with set_config(..., true) in the same transaction.
--   3. (begin only) a random value begin stores in that setting for the rest of the session, so begin and
--      complete on one dedicated connection need nothing more.
-- Behind a transaction pooler (PgBouncer, pool_mode = transaction) a session is a server connection other
-- clients share: two callers relying on 3 can share one holder, and a stale one could then complete a key
-- the other took over. Callers there use 1 or 2.
-- Doing the work and idempotency_complete() in ONE transaction makes database effects exactly-once: if a
-- stale owner (its lease expired and another caller took the key over) tries to complete, complete raises,
-- and the stale owner's transaction, effects included, rolls back.

---- idempotency_assert_key
---- Raises 22023 unless scope and key are acceptable (key: 1-255 printable ASCII characters).
create or replace function ballast.idempotency_assert_key(scope text, key text)
returns void as $$
declare
  bad text;
begin
  if scope is null or octet_length(scope) not between 1 and 1024 then
    raise exception using errcode = '22023',
      message = format('idempotency scope must be 1 to 1024 bytes, got %s',
                       coalesce(octet_length(scope) || ' bytes', 'null')),
      hint = 'The scope says whose key it is, e.g. ''sub:<user id>'' or ''ip:<client address>''.';
  end if;
  if key is null or length(key) not between 1 and 255 then
    raise exception using errcode = '22023',
      message = format('idempotency key must be 1 to 255 characters, got %s',
                       case when key is null then 'null' when key = '' then 'an empty key'
                            else length(key) || ' characters' end),
      hint = 'Use a random, unique value per operation, e.g. a UUID (36 characters).';
  end if;
  bad := substring(key from '[^\x20-\x7e]');
  if bad is not null then
    raise exception using errcode = '22023',
      message = format('idempotency key must be printable ASCII (0x20 to 0x7E), got U+%s at position %s of %L',
                       upper(lpad(to_hex(ascii(bad)), 4, '0')), strpos(key, bad), left(key, 60)),
      hint = 'Use a random, unique value per operation, e.g. a UUID (36 characters).';
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.idempotency_assert_key(text, text) is
  E'Raise 22023 unless scope is 1-1024 bytes and key is 1-255 printable ASCII characters (used by the idempotency functions).';

---- idempotency_key_ok
---- The rules idempotency_assert_key enforces, as one expression the hot paths test before calling it.
-- A plain SQL function, so PL/pgSQL inlines it into the caller's IF: no function call on the hot path.
-- One unanchored character class: a bounded repetition such as ^[\x20-\x7e]{1,255}$ cost ~60 us per
-- 40-character key, most of a begin.
create or replace function ballast.idempotency_key_ok(scope text, key text)
returns boolean as $$
  select coalesce(octet_length(scope) between 1 and 1024 and length(key) between 1 and 255 and key !~ '[^\x20-\x7e]', false)
$$ language sql immutable;
comment on function ballast.idempotency_key_ok(text, text) is
  E'True when scope is 1-1024 bytes and key is 1-255 printable ASCII characters; false otherwise (nulls included). idempotency_assert_key says what is wrong.';

---- idempotency_holder_ok
---- The rule for a holder argument (1-255 printable ASCII characters), inlined into the callers' IF like idempotency_key_ok.
create or replace function ballast.idempotency_holder_ok(holder text)
returns boolean as $$
  select coalesce(length(holder) between 1 and 255 and holder !~ '[^\x20-\x7e]', false)
$$ language sql immutable;
comment on function ballast.idempotency_holder_ok(text) is
  E'True when holder is 1-255 printable ASCII characters; false otherwise (nulls included). idempotency_assert_holder says what is wrong.';

---- idempotency_assert_holder
---- Raises 22023 naming the holder argument unless it is 1-255 printable ASCII characters.
-- An empty string is refused rather than read as "no holder": it is what an unset variable usually becomes,
-- and a caller that meant to name its holder must not silently fall back to a shared session one.
create or replace function ballast.idempotency_assert_holder(holder text)
returns void as $$
declare
  bad text := substring(holder from '[^\x20-\x7e]');
  advice constant text := 'Give the same value, one per request or job (e.g. gen_random_uuid()::text), to idempotency_begin and to '
    'idempotency_complete/_release/_extend; or leave holder out and set ballast.idempotency_owner with set_config(..., true) in the same transaction.';
begin
  if holder is null or length(holder) not between 1 and 255 then
    raise exception using errcode = '22023',
      message = format('idempotency holder must be 1 to 255 printable ASCII characters, got %s',
                       case when holder is null then 'null' when holder = '' then 'an empty string'
                            else format('%s characters (%L...)', length(holder), left(holder, 40)) end),
      hint = advice;
  end if;
  if bad is not null then
    raise exception using errcode = '22023',
      message = format('idempotency holder must be printable ASCII (0x20 to 0x7E), got U+%s at position %s of %L',
                       upper(lpad(to_hex(ascii(bad)), 4, '0')), strpos(holder, bad), left(holder, 60)),
      hint = advice;
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.idempotency_assert_holder(text) is
  E'Raise 22023 unless holder is 1-255 printable ASCII characters (the idempotency functions check their holder argument with it).';

---- idempotency_begin
---- Claims a key (started), or says what the caller gets instead: replay, in_progress or mismatch.
-- Every function below looks a key up by (scope, key) and runs with enable_seqscan = off. PL/pgSQL keeps
-- one generic plan per session: planned while the table is empty (a new database, or after cleanup
-- emptied it and vacuum recorded 0 rows) that plan is a sequential scan, which every pooled session then
-- keeps while the table grows, until an autoanalyze invalidates it. Measured: 824 keys/s instead of
-- ~3,000 in bench idempotency run on an emptied table, every call scanning the whole heap.
create or replace function ballast.idempotency_begin(
  scope text, key text, request_hash text,
  ttl interval default '24 hours', lease interval default '30 seconds', holder text default null)
returns table (outcome text, status_code int, response_body text, retry_after_seconds int) as $$
declare
  t timestamptz := clock_timestamp(); -- not now(): a caller may be deep in a long transaction
  me text;
  r ballast.idempotency_keys;
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_begin.scope, idempotency_begin.key);
  end if;
  if request_hash is null or length(request_hash) not between 1 and 256 then
    raise exception using errcode = '22023',
      message = format('request_hash must be 1 to 256 characters, got %s', coalesce(length(request_hash) || ' characters', 'null')),
      hint = 'Hash what makes two requests the same one, e.g. encode(sha256(convert_to(body, ''UTF8'')), ''hex'').';
  end if;
  if ttl is null or ttl <= interval '0' or lease is null or lease <= interval '0' or lease > ttl then
    raise exception using errcode = '22023',
      message = format('ttl and lease must be positive with lease <= ttl, got ttl %s and lease %s',
                       coalesce(ttl::text, 'null'), coalesce(lease::text, 'null')),
      hint = 'Defaults: ttl 24 hours, lease 30 seconds. The lease must outlast the slowest request.';
  end if;
  -- bounded so a typo cannot pin a key (and its row) for centuries; a comparison, the hot path stays cheap
  if ttl > interval '30 days' or lease > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('ttl must be at most 30 days and lease at most 1 day, got ttl %s and lease %s', ttl, lease),
      hint = 'A client retries a request within minutes or hours; a holder that works longer renews with idempotency_extend.';
  end if;
  if holder is not null and not ballast.idempotency_holder_ok(holder) then
    perform ballast.idempotency_assert_holder(holder);
  end if;
  me := coalesce(holder, nullif(current_setting('ballast.idempotency_owner', true), ''),
                 set_config('ballast.idempotency_owner', gen_random_uuid()::text, false));

  -- Each pass either answers or lost a race to a concurrent caller whose change it then reads.
  for attempt in 1..5 loop
    -- Most keys are new, so the insert comes first: a new key costs this one statement. The unique index
    -- lets exactly one caller insert; the others wait for its commit, insert nothing and read its row.
    -- `do nothing` locks no row that is there already, so a replay stays a read-only transaction.
    -- Measured (bench idempotency, 16 clients): begin+complete 0.56x -> 0.61x the seed's one-transaction
    -- store; replays, which pay the insert attempt too, 18.8k -> 14.2-14.7k lookups/s (p99 < 3.5 ms).
    insert into ballast.idempotency_keys
      (scope, key, request_hash, status, status_code, response_body, locked_until, locked_by, created_at, expires_at)
    values (idempotency_begin.scope, idempotency_begin.key, idempotency_begin.request_hash, 'in_progress',
            null, null, t + lease, me, t, t + ttl)
    on conflict on constraint idempotency_keys_pkey do nothing;
    if found then
      outcome := 'started';
      return next;
      return;
    end if;

    select * into r from ballast.idempotency_keys k
    where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key;
    if not found then
      continue;  -- removed since the insert saw it (released, or expired and cleaned up): insert again
    end if;

    if r.expires_at <= t then
      -- Expired counts as absent: start afresh in place. A concurrent caller doing the same waits for
      -- this row lock, then finds the row no longer expired, updates nothing and goes round again.
      update ballast.idempotency_keys k
        set request_hash = idempotency_begin.request_hash, status = 'in_progress', status_code = null,
            response_body = null, locked_until = t + lease, locked_by = me, created_at = t, expires_at = t + ttl
      where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key and k.expires_at <= t;
      if found then
        outcome := 'started';
        return next;
        return;
      end if;
      continue;
    end if;

    if r.request_hash <> idempotency_begin.request_hash then
      outcome := 'mismatch';
    elsif r.status = 'completed' then
      outcome := 'replay';
      status_code := r.status_code;
      response_body := r.response_body;
    elsif r.locked_until > t then
      outcome := 'in_progress';
      retry_after_seconds := greatest(1, ceil(extract(epoch from r.locked_until - t)))::int;
    end if;
    if outcome is not null then
      return next;
      return;
    end if;

    -- The holder's lease ran out (it crashed or is too slow): take the key over. If the holder
    -- completes at the same moment, its row lock makes us wait and then see 'completed' instead.
    update ballast.idempotency_keys k set locked_until = t + lease, locked_by = me
    where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key and k.status = 'in_progress'
      and k.locked_until <= t and k.request_hash = idempotency_begin.request_hash and k.expires_at > t;
    if found then
      outcome := 'started';
      return next;
      return;
    end if;
  end loop;
  raise exception using errcode = '40001',
    message = format('idempotency key %L in scope %L changed under this caller 5 times in a row', key, scope),
    hint = 'Retry the call.';
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_begin(text, text, text, interval, interval, text) is
  E'Claim an idempotency key. outcome: started (you hold it for `lease`: do the work, then idempotency_complete or idempotency_release), '
  'replay (the stored status_code and response_body), in_progress (another caller holds a live lease; retry after retry_after_seconds), '
  'mismatch (the key was used with a different request_hash). An expired key (older than ttl) counts as absent. '
  'Raises 22023 unless 0 < lease <= ttl, ttl <= 30 days and lease <= 1 day. '
  'The holder is the argument holder, else the setting ballast.idempotency_owner, else a random value begin stores in that setting for the session '
  '(behind a transaction pooler, pass holder or set the setting in the transaction: a pooled session is shared).';

---- idempotency_not_held
---- Raises 55000 explaining why the caller does not hold the key (absent, completed, or someone else's).
create or replace function ballast.idempotency_not_held(scope text, key text, action text, holder text)
returns void as $$
declare
  r ballast.idempotency_keys;
begin
  select * into r from ballast.idempotency_keys k
  where k.scope = idempotency_not_held.scope and k.key = idempotency_not_held.key;
  raise exception using errcode = '55000',
    message = format('cannot %s idempotency key %L in scope %L: %s', action, key, scope,
      case when r.key is null then 'it does not exist (never begun, released, or expired and removed)'
           when r.status = 'completed' then 'it is already completed'
           when holder is null then 'this caller named no holder (no holder argument, and the setting ballast.idempotency_owner is empty)'
           else 'another caller holds it (if this caller held it once, its lease expired and the key was taken over)' end),
    hint = 'Only the caller that got outcome started may complete, release or extend, with the same holder: the holder argument '
           'it gave idempotency_begin, or the same ballast.idempotency_owner setting (the same session, or the same value set in '
           'this transaction). Roll back the work this caller did for the key.';
end;
$$ language plpgsql stable;
comment on function ballast.idempotency_not_held(text, text, text, text) is
  E'Raise 55000 saying why the caller (holder, null when it named none) does not hold an idempotency key (used by idempotency_complete, _release and _extend).';

---- idempotency_complete
---- Stores the result for a key the caller holds; retries then get it back (replay).
create or replace function ballast.idempotency_complete(scope text, key text, status_code int, response_body text, holder text default null)
returns void as $$
declare
  me text := coalesce(holder, nullif(current_setting('ballast.idempotency_owner', true), ''));
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_complete.scope, idempotency_complete.key);
  end if;
  if holder is not null and not ballast.idempotency_holder_ok(holder) then
    perform ballast.idempotency_assert_holder(holder);
  end if;
  if status_code is null or status_code not between 100 and 599 then
    raise exception using errcode = '22023',
      message = format('status_code must be an HTTP status from 100 to 599, got %s', coalesce(status_code::text, 'null')),
      hint = 'For a result that should not be stored (e.g. a 5xx the client may retry), call idempotency_release instead.';
  end if;
  update ballast.idempotency_keys k
  set status = 'completed', status_code = idempotency_complete.status_code,
      response_body = idempotency_complete.response_body, locked_until = null, locked_by = null
  where k.scope = idempotency_complete.scope and k.key = idempotency_complete.key and k.status = 'in_progress'
    and k.locked_by = me;
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'complete', me);
  end if;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_complete(text, text, int, text, text) is
  E'Store the result (HTTP status_code 100-599 and response_body) of a key this caller holds. Raises 55000 when the caller '
  'does not hold it (lease taken over, released, completed): call it in the transaction that did the work, so that work rolls back too. '
  'holder: the one given to idempotency_begin (default: the setting ballast.idempotency_owner).';

---- idempotency_release
---- Gives up a key the caller holds, without a result: the next caller starts afresh.
create or replace function ballast.idempotency_release(scope text, key text, holder text default null)
returns void as $$
declare
  me text := coalesce(holder, nullif(current_setting('ballast.idempotency_owner', true), ''));
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_release.scope, idempotency_release.key);
  end if;
  if holder is not null and not ballast.idempotency_holder_ok(holder) then
    perform ballast.idempotency_assert_holder(holder);
  end if;
  delete from ballast.idempotency_keys k
  where k.scope = idempotency_release.scope and k.key = idempotency_release.key and k.status = 'in_progress'
    and k.locked_by = me;
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'release', me);
  end if;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_release(text, text, text) is
  E'Give up a key this caller holds without storing a result (e.g. after a 5xx), so a retry runs again. Raises 55000 when the caller does not hold it, 22023 unless 0 < lease <= 1 day. '
  'holder: the one given to idempotency_begin (default: the setting ballast.idempotency_owner).';

---- idempotency_extend
---- Renews the lease on a key the caller holds, so a slow request that is still alive keeps its key.
create or replace function ballast.idempotency_extend(scope text, key text, lease interval default '30 seconds', holder text default null)
returns timestamptz as $$
declare
  me text := coalesce(holder, nullif(current_setting('ballast.idempotency_owner', true), ''));
  new_end timestamptz;
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_extend.scope, idempotency_extend.key);
  end if;
  if holder is not null and not ballast.idempotency_holder_ok(holder) then
    perform ballast.idempotency_assert_holder(holder);
  end if;
  if lease is null or lease <= interval '0' then
    raise exception using errcode = '22023',
      message = format('lease must be positive, got %s', coalesce(lease::text, 'null')),
      hint = 'Renew with the lease begin was given (default 30 seconds), every third of it.';
  end if;
  if lease > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('lease must be at most 1 day, got %s', lease),
      hint = 'Renew with the lease begin was given (default 30 seconds), every third of it.';
  end if;
  update ballast.idempotency_keys k set locked_until = greatest(k.locked_until, clock_timestamp() + lease)
  where k.scope = idempotency_extend.scope and k.key = idempotency_extend.key and k.status = 'in_progress'
    and k.locked_by = me
  returning k.locked_until into new_end;
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'extend', me);
  end if;
  return new_end;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_extend(text, text, interval, text) is
  E'Renew the lease on a key this caller holds (locked_until = now + lease, never earlier than it was) and return the new end. '
  'A holder that works longer than its lease calls it periodically, so only a crashed holder loses its key. Raises 55000 when the caller does not hold it, 22023 unless 0 < lease <= 1 day. '
  'holder: the one given to idempotency_begin (default: the setting ballast.idempotency_owner).';

---- idempotency_claim
---- One-transaction idempotency: lock the key for this transaction, then say what the caller does.
-- For a caller that does the work in the same transaction as the claim (the API does):
--   begin; [set local lock_timeout = <short>]; select * from ballast.idempotency_claim(scope, key, hash);
--   started → the work, then idempotency_store(scope, key, hash, status, body) and commit (or roll back: nothing is left)
-- The claim writes nothing. It takes a transaction-scoped advisory lock on the key, so a concurrent duplicate
-- waits (as long as its lock_timeout lets it: 55P03 after that) until the first commits, then finds the
-- stored row and replays it; if the first rolled back, the lock is gone with it and the duplicate runs.
-- The lock lives in the database, so it holds across API processes, and being transaction-scoped it is right
-- behind PgBouncer in transaction mode. The stored row's primary key stays the final arbiter: see
-- idempotency_store. Measured against begin + complete (an insert, then an update with the response): one
-- insert per key instead of two writes (bench idempotency, docs/ARCHITECTURE.md).
create or replace function ballast.idempotency_claim(scope text, key text, request_hash text)
returns table (outcome text, status_code int, response_body text, retry_after_seconds int) as $$
declare
  t timestamptz := clock_timestamp();
  r ballast.idempotency_keys;
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_claim.scope, idempotency_claim.key);
  end if;
  if request_hash is null or length(request_hash) not between 1 and 256 then
    raise exception using errcode = '22023',
      message = format('request_hash must be 1 to 256 characters, got %s', coalesce(length(request_hash) || ' characters', 'null')),
      hint = 'Hash what makes two requests the same one, e.g. encode(sha256(convert_to(body, ''UTF8'')), ''hex'').';
  end if;
  -- The lock (class, hash of scope and key), in the two-int4 form, whose lock tags never meet those of
  -- pg_advisory_lock(bigint); the class is 'ball' in ASCII (1650551916), so only code of yours that locks
  -- (1650551916, n) itself could meet one. Two different keys whose 32-bit hashes collide share a lock: the
  -- second waits for the first's commit (or gets 55P03 after its lock wait); it never sees the other key's
  -- row. With N claims in flight the chance that any two collide is about N^2 / 2^33 (16 in flight: 3e-8).
  perform pg_advisory_xact_lock(1650551916, hashtext(octet_length(idempotency_claim.scope) || ':' || idempotency_claim.scope || idempotency_claim.key));
  select * into r from ballast.idempotency_keys k
  where k.scope = idempotency_claim.scope and k.key = idempotency_claim.key;
  if not found or r.expires_at <= clock_timestamp() then
    outcome := 'started';  -- absent, or expired (counts as absent): idempotency_store replaces it
  elsif r.request_hash <> idempotency_claim.request_hash then
    outcome := 'mismatch';
  elsif r.status = 'completed' then
    outcome := 'replay';
    status_code := r.status_code;
    response_body := r.response_body;
  elsif r.locked_until > clock_timestamp() then
    -- held through idempotency_begin by code of yours, its lease still running
    outcome := 'in_progress';
    retry_after_seconds := greatest(1, ceil(extract(epoch from r.locked_until - t)))::int;
  else
    outcome := 'started';  -- its holder's lease ran out: idempotency_store takes the key over
  end if;
  return next;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_claim(text, text, text) is
  E'Claim an idempotency key for the rest of this transaction (a transaction-scoped advisory lock: a concurrent claim of the same key waits, '
  'as long as its lock_timeout allows, then raises 55P03). Writes nothing. outcome: started (do the work, then idempotency_store and commit in this '
  'transaction; a rollback leaves nothing), replay (the stored status_code and response_body), in_progress (held through idempotency_begin with a live lease; '
  'retry after retry_after_seconds), mismatch (the key was used with a different request_hash). An expired key counts as absent. '
  'Raises 22023 for a bad scope, key or request_hash.';

---- idempotency_store
---- Stores the response of a key claimed with idempotency_claim in this transaction: one insert, the completed row.
-- The primary key is the final arbiter: if another caller stored or claimed the key meanwhile (through
-- idempotency_begin, which takes no advisory lock), the
-- insert conflicts and store raises 40001, so the caller rolls its work back and claims again (replay, 409 or 422).
create or replace function ballast.idempotency_store(
  scope text, key text, request_hash text, status_code int, response_body text, ttl interval default '24 hours')
returns void as $$
declare
  t timestamptz := clock_timestamp();
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_store.scope, idempotency_store.key);
  end if;
  if request_hash is null or length(request_hash) not between 1 and 256 then
    raise exception using errcode = '22023',
      message = format('request_hash must be 1 to 256 characters, got %s', coalesce(length(request_hash) || ' characters', 'null')),
      hint = 'Give the request_hash given to idempotency_claim.';
  end if;
  if status_code is null or status_code not between 100 and 599 then
    raise exception using errcode = '22023',
      message = format('status_code must be an HTTP status from 100 to 599, got %s', coalesce(status_code::text, 'null')),
      hint = 'For a result that should not be stored (e.g. a 5xx the client may retry), roll the transaction back instead.';
  end if;
  if ttl is null or ttl <= interval '0' or ttl > interval '30 days' then
    raise exception using errcode = '22023',
      message = format('ttl must be positive and at most 30 days, got %s', coalesce(ttl::text, 'null')),
      hint = 'Default: 24 hours. A client retries a request within minutes or hours.';
  end if;
  insert into ballast.idempotency_keys as k
    (scope, key, request_hash, status, status_code, response_body, locked_until, locked_by, created_at, expires_at)
  values (idempotency_store.scope, idempotency_store.key, idempotency_store.request_hash, 'completed',
          idempotency_store.status_code, idempotency_store.response_body, null, null, t, t + ttl)
  on conflict on constraint idempotency_keys_pkey do update
    set request_hash = excluded.request_hash, status = 'completed', status_code = excluded.status_code,
        response_body = excluded.response_body, locked_until = null, locked_by = null,
        created_at = excluded.created_at, expires_at = excluded.expires_at
    -- only a row idempotency_claim counted as absent: expired, or in progress with its lease run out
    where k.expires_at <= t or (k.status = 'in_progress' and k.locked_until <= t and k.request_hash = excluded.request_hash);
  if not found then
    raise exception using errcode = '40001',
      message = format('idempotency key %L in scope %L was stored or claimed by another caller since this transaction claimed it', key, scope),
      hint = 'Roll back this transaction (its work included) and claim the key again: it then replays, or says in_progress or mismatch.';
  end if;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_store(text, text, text, int, text, interval) is
  E'Store the result (HTTP status_code 100-599 and response_body, kept for ttl, at most 30 days) of a key claimed with idempotency_claim in this transaction, '
  'as one insert of the completed row; commit it with the work. Raises 40001 when another caller stored or claimed the key meanwhile '
  '(roll back and claim again), 22023 for bad input.';

---- the signatures before the holder argument
-- Earlier versions had these functions without the holder argument (and not_held without holder). A call
-- written for those signatures resolves to the new ones unchanged (holder defaults to null), so the old ones
-- go; EXECUTE a user granted on an old one (README: "grant execute to other roles that need it") is granted
-- on its successor first, so an upgrade takes no caller's access away.
do $$
declare
  f record;
  grantee text;
begin
  for f in select * from (values
      ('ballast.idempotency_begin(text, text, text, interval, interval)', 'ballast.idempotency_begin(text, text, text, interval, interval, text)'),
      ('ballast.idempotency_complete(text, text, int, text)', 'ballast.idempotency_complete(text, text, int, text, text)'),
      ('ballast.idempotency_release(text, text)', 'ballast.idempotency_release(text, text, text)'),
      ('ballast.idempotency_extend(text, text, interval)', 'ballast.idempotency_extend(text, text, interval, text)'),
      ('ballast.idempotency_not_held(text, text, text)', null)) v(old, new)
  loop
    continue when to_regprocedure(f.old) is null;
    for grantee in
      select a.grantee::regrole::text
      from pg_proc p cross join aclexplode(p.proacl) a
      where p.oid = to_regprocedure(f.old) and f.new is not null and a.privilege_type = 'EXECUTE'
        and a.grantee <> 0 and a.grantee <> p.proowner  -- PUBLIC: privileges.sql decides; the owner has it anyway
    loop
      execute format('grant execute on function %s to %s', f.new, grantee);
    end loop;
    execute format('drop function %s', f.old);
  end loop;
end;
$$;

revoke all on function ballast.idempotency_assert_key(text, text) from public;
revoke all on function ballast.idempotency_key_ok(text, text) from public;
revoke all on function ballast.idempotency_holder_ok(text) from public;
revoke all on function ballast.idempotency_assert_holder(text) from public;
revoke all on function ballast.idempotency_not_held(text, text, text, text) from public;
revoke all on function ballast.idempotency_begin(text, text, text, interval, interval, text) from public;
revoke all on function ballast.idempotency_complete(text, text, int, text, text) from public;
revoke all on function ballast.idempotency_release(text, text, text) from public;
revoke all on function ballast.idempotency_extend(text, text, interval, text) from public;
revoke all on function ballast.idempotency_claim(text, text, text) from public;
revoke all on function ballast.idempotency_store(text, text, text, int, text, interval) from public;
-- The API's login role calls them directly (api/middleware/idempotency.ts), outside any visitor role.
grant execute on function ballast.idempotency_begin(text, text, text, interval, interval, text) to ballast_authenticator;
grant execute on function ballast.idempotency_complete(text, text, int, text, text) to ballast_authenticator;
grant execute on function ballast.idempotency_release(text, text, text) to ballast_authenticator;
grant execute on function ballast.idempotency_extend(text, text, interval, text) to ballast_authenticator;
grant execute on function ballast.idempotency_claim(text, text, text) to ballast_authenticator;
grant execute on function ballast.idempotency_store(text, text, text, int, text, interval) to ballast_authenticator;

select ballast.owner_only_policy('ballast.idempotency_keys');

---- verify__idempotency
---- Checks that the idempotency table's indexes serve its lookups: by (scope, key), and by expires_at.
create or replace function ballast.verify__idempotency()
returns table (check_name text, ok boolean, detail text) as $$
  with t as (
    select to_regclass('ballast.idempotency_keys') as tbl
  ), idx as (
    select i.indexrelid::regclass as name, i.indisunique, i.indisvalid and i.indisready as valid,
           i.indpred is null and i.indexprs is null as plain, am.amname,
           array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality u(attnum, n)
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = u.attnum
                 order by u.n) as cols
    from t join pg_index i on i.indrelid = t.tbl
    join pg_class ic on ic.oid = i.indexrelid join pg_am am on am.oid = ic.relam
  )
  select 'idempotency_keys lookup by (scope, key)',
         exists (select 1 from idx where indisunique and valid and plain and amname = 'btree'
                 and cols[1:2] @> array['scope', 'key'] and cardinality(cols) = 2),
         case when (select tbl from t) is null then 'table ballast.idempotency_keys is missing'
              when exists (select 1 from idx where indisunique and valid and plain and amname = 'btree'
                           and cols[1:2] @> array['scope', 'key'] and cardinality(cols) = 2)
                then 'unique btree ' || (select string_agg(name::text, ', ') from idx where indisunique and cols[1:2] @> array['scope', 'key'])
              else 'no valid unique btree index on exactly (scope, key): begin''s lookup and its ON CONFLICT need one; '
                   || 'alter table ballast.idempotency_keys add primary key (scope, key)' end
  union all
  select 'idempotency_keys lookup by expires_at',
         exists (select 1 from idx where valid and plain and amname = 'btree' and cols[1] = 'expires_at'),
         case when (select tbl from t) is null then 'table ballast.idempotency_keys is missing'
              when exists (select 1 from idx where valid and plain and amname = 'btree' and cols[1] = 'expires_at')
                then 'btree ' || (select string_agg(name::text, ', ') from idx where cols[1] = 'expires_at')
              else 'no valid btree index led by expires_at: cleanup of expired keys would scan the whole table; '
                   || 'create index on ballast.idempotency_keys (expires_at)' end
$$ language sql stable;
comment on function ballast.verify__idempotency() is
  E'verify_migration_success() checks: ballast.idempotency_keys has a valid unique btree on (scope, key) and a btree led by expires_at.';

---- metrics__idempotency
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): live keys and keys in progress.
create or replace function ballast.metrics__idempotency()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_idempotency_keys_live', 'Idempotency keys not yet expired', '{}'::jsonb, count(*)::float8
  from ballast.idempotency_keys k where k.expires_at > now()
  union all
  select 'ballast_idempotency_keys_in_progress', 'Idempotency keys whose request is still running', '{}'::jsonb, count(*)::float8
  from ballast.idempotency_keys k where k.status = 'in_progress' and k.expires_at > now()
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__idempotency() is
  E'Gauges for /metrics: idempotency keys not yet expired, and those whose request is still running.';
