-- Idempotency keys: the four outcomes, lease expiry and takeover, a stale holder cannot complete, key
-- validation (22023, nothing left behind), an expired key behaves as absent, the holder argument and its
-- validation, privileges, the verify check. Callers are told apart by the setting ballast.idempotency_owner
-- ('a', 'b') or the holder argument ('req-1', ...); concurrency is in test/idempotency.test.ts.
begin;
select plan(102);

-- the table and its indexes
select has_table('ballast', 'idempotency_keys', 'table ballast.idempotency_keys exists');
select col_is_pk('ballast', 'idempotency_keys', array['scope', 'key'], 'unique on (scope, key)');
select has_index('ballast', 'idempotency_keys', 'idempotency_keys_expires_at_idx', array['expires_at'], 'index on expires_at for cleanup');
select is((select relrowsecurity and relforcerowsecurity from pg_class where oid = 'ballast.idempotency_keys'::regclass), true,
          'RLS enabled and forced');
select results_eq($$select check_name, ok from ballast.verify__idempotency() order by 1$$,
                  $$values ('idempotency_keys lookup by (scope, key)', true), ('idempotency_keys lookup by expires_at', true)$$,
                  'verify__idempotency: the indexes serve the lookups');

-- outcomes: started, in_progress, mismatch, replay
select set_config('ballast.idempotency_owner', 'a', true);
select results_eq($$select outcome, status_code, response_body, retry_after_seconds from ballast.idempotency_begin('t', 'k1', 'h1')$$,
                  $$values ('started'::text, null::int, null::text, null::int)$$, 'a fresh key: started');
select set_config('ballast.idempotency_owner', 'b', true);
select results_eq($$select outcome, retry_after_seconds between 1 and 30 from ballast.idempotency_begin('t', 'k1', 'h1')$$,
                  $$values ('in_progress'::text, true)$$, 'same key while the lease is live: in_progress with retry_after_seconds 1..30');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k1', 'h2')$$,
                  $$values ('mismatch'::text)$$, 'same key, other request_hash while in progress: mismatch');
select throws_ok($$select ballast.idempotency_complete('t', 'k1', 200, 'b')$$, '55000', null,
                 'a caller that did not get started cannot complete');
select set_config('ballast.idempotency_owner', 'a', true);
select lives_ok($$select ballast.idempotency_complete('t', 'k1', 201, '{"data":1}')$$, 'the holder completes');
select results_eq($$select outcome, status_code, response_body, retry_after_seconds from ballast.idempotency_begin('t', 'k1', 'h1')$$,
                  $$values ('replay'::text, 201, '{"data":1}'::text, null::int)$$, 'after completion: replay of the stored result');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k1', 'h2')$$,
                  $$values ('mismatch'::text)$$, 'same key, other request_hash after completion: mismatch');
select throws_like($$select ballast.idempotency_complete('t', 'k1', 200, 'again')$$, '%already completed%',
                   'a completed key cannot be completed again');
select results_eq($$select outcome from ballast.idempotency_begin('other scope', 'k1', 'h2')$$,
                  $$values ('started'::text)$$, 'keys are per scope');

-- lease expiry: the next caller takes over, the stale holder cannot complete, release or renew
select set_config('ballast.idempotency_owner', 'a', true);
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k2', 'h1', '1 hour', '10 seconds')$$,
                  $$values ('started'::text)$$, 'a holds k2');
select set_config('ballast.idempotency_owner', 'b', true);
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k2', 'h1')$$,
                  $$values ('in_progress'::text)$$, 'b waits while a''s lease is live');
update ballast.idempotency_keys set locked_until = clock_timestamp() - interval '1 second' where scope = 't' and key = 'k2';
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k2', 'h2')$$,
                  $$values ('mismatch'::text)$$, 'an expired lease is not taken over by a different request');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k2', 'h1')$$,
                  $$values ('started'::text)$$, 'a''s lease expired: b takes the key over');
select is((select locked_by from ballast.idempotency_keys where scope = 't' and key = 'k2'), 'b', 'b now holds k2');
select ok(ballast.idempotency_extend('t', 'k2', '1 hour') > clock_timestamp() + interval '59 minutes', 'the holder renews its lease');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k2', 'h1')$$,
                  $$values ('in_progress'::text)$$, 'a renewed lease is live again');
select set_config('ballast.idempotency_owner', 'a', true);
create temp table effects (n int) on commit drop;
select throws_ok($$with work as (insert into effects values (1) returning n)
                   select ballast.idempotency_complete('t', 'k2', 200, 'from a') from work$$,
                 '55000', 'cannot complete idempotency key ''k2'' in scope ''t'': another caller holds it (if this caller held it once, its lease expired and the key was taken over)',
                 'the stale holder cannot complete');
select is((select count(*)::int from effects), 0, 'the stale holder''s work, done in the same transaction, rolled back with it');
select throws_ok($$select ballast.idempotency_release('t', 'k2')$$, '55000', null, 'the stale holder cannot release');
select throws_ok($$select ballast.idempotency_extend('t', 'k2')$$, '55000', null, 'the stale holder cannot renew');
select set_config('ballast.idempotency_owner', 'b', true);
select lives_ok($$select ballast.idempotency_complete('t', 'k2', 200, 'from b')$$, 'the new holder completes');
select results_eq($$select outcome, response_body from ballast.idempotency_begin('t', 'k2', 'h1')$$,
                  $$values ('replay'::text, 'from b'::text)$$, 'retries get the new holder''s result');

-- release: the next caller starts afresh
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k3', 'h1')$$, $$values ('started'::text)$$, 'b holds k3');
select lives_ok($$select ballast.idempotency_release('t', 'k3')$$, 'the holder releases');
select is((select count(*)::int from ballast.idempotency_keys where scope = 't' and key = 'k3'), 0, 'release removes the row');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k3', 'h2')$$, $$values ('started'::text)$$,
                  'after release the key is free, whatever the request');

-- an expired key behaves as absent (until the cleanup capability removes it)
update ballast.idempotency_keys set expires_at = clock_timestamp() - interval '1 second' where scope = 't' and key in ('k1', 'k3');
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k1', 'h9')$$, $$values ('started'::text)$$,
                  'an expired completed key: a different request starts (no mismatch, no replay)');
select set_config('ballast.idempotency_owner', 'c', true);
select results_eq($$select outcome from ballast.idempotency_begin('t', 'k3', 'h2')$$, $$values ('started'::text)$$,
                  'an expired in-progress key: another caller starts even though the lease looked live');
select is((select (status, locked_by, expires_at > clock_timestamp())::text from ballast.idempotency_keys where scope = 't' and key = 'k1'),
          '(in_progress,b,t)', 'the expired row is replaced: in progress again, new holder, new expiry');

-- key validation: 22023, and no row left behind
select throws_like($$select ballast.idempotency_begin('bad', '', 'h')$$, '%1 to 255 characters, got an empty key%', 'empty key: 22023');
select throws_ok($$select ballast.idempotency_begin('bad', repeat('k', 256), 'h')$$, '22023',
                 'idempotency key must be 1 to 255 characters, got 256 characters', '256 characters: 22023');
select throws_ok($$select ballast.idempotency_begin('bad', E'a\tb', 'h')$$, '22023', null, 'a tab: 22023');
select throws_ok($$select ballast.idempotency_begin('bad', 'a' || chr(1), 'h')$$, '22023', null, 'a control character: 22023');
select throws_ok($$select ballast.idempotency_begin('bad', 'a' || chr(127), 'h')$$, '22023', null, 'DEL: 22023');
select throws_like($$select ballast.idempotency_begin('bad', 'clé', 'h')$$, '%printable ASCII%U+00E9 at position 3%', 'non-ASCII: 22023 naming the character');
select throws_ok($$select ballast.idempotency_begin('bad', null, 'h')$$, '22023', null, 'null key: 22023');
select throws_ok($$select ballast.idempotency_complete('bad', E'\n', 200, '')$$, '22023', null, 'complete validates the key too');
select is((select count(*)::int from ballast.idempotency_keys where scope = 'bad'), 0, 'rejected keys leave no row');
select results_eq($$select outcome from ballast.idempotency_begin('edge', ' !~' || repeat('z', 252), 'h')$$, $$values ('started'::text)$$,
                  '255 printable characters, spaces included, are a valid key');
select throws_ok($$select ballast.idempotency_begin('t', 'k9', 'h', '1 hour', '0 seconds')$$, '22023', null, 'a zero lease: 22023');
select throws_ok($$select ballast.idempotency_complete('edge', ' !~' || repeat('z', 252), 600, 'x')$$, '22023', null,
                 'status_code outside 100..599: 22023');

-- the holder argument (the form for callers behind a transaction pooler, where a session is shared):
-- it wins over the setting, and only the same holder may renew, complete or release
select set_config('ballast.idempotency_owner', 'a', true);
select results_eq($$select outcome from ballast.idempotency_begin('held', 'k1', 'h1', holder => 'req-1')$$,
                  $$values ('started'::text)$$, 'begin with a holder argument: started');
select is((select locked_by from ballast.idempotency_keys where scope = 'held' and key = 'k1'), 'req-1',
          'the holder argument is recorded, not the setting');
select throws_ok($$select ballast.idempotency_complete('held', 'k1', 200, 'x')$$, '55000', null,
                 'the setting''s holder (a) cannot complete a key begun by holder req-1');
select throws_ok($$select ballast.idempotency_complete('held', 'k1', 200, 'x', holder => 'req-2')$$, '55000',
                 'cannot complete idempotency key ''k1'' in scope ''held'': another caller holds it (if this caller held it once, its lease expired and the key was taken over)',
                 'another holder cannot complete');
select ok(ballast.idempotency_extend('held', 'k1', '1 hour', holder => 'req-1') > clock_timestamp() + interval '59 minutes',
          'the holder renews its lease with its holder argument');
select lives_ok($$select ballast.idempotency_complete('held', 'k1', 200, 'done', holder => 'req-1')$$, 'the holder completes');
select results_eq($$select outcome, response_body from ballast.idempotency_begin('held', 'k1', 'h1', holder => 'req-9')$$,
                  $$values ('replay'::text, 'done'::text)$$, 'retries replay, whatever their holder');
select results_eq($$select outcome from ballast.idempotency_begin('held', 'k2', 'h1', '1 hour', '30 seconds', 'req-3')$$,
                  $$values ('started'::text)$$, 'the holder argument by position');
select lives_ok($$select ballast.idempotency_release('held', 'k2', 'req-3')$$, 'the holder releases');
select is((select count(*)::int from ballast.idempotency_keys where scope = 'held' and key = 'k2'), 0, 'released by its holder: the row is gone');
select results_eq($$select outcome from ballast.idempotency_begin('held', 'k3', 'h1', holder => null)$$,
                  $$values ('started'::text)$$, 'holder => null is no holder argument');
select is((select locked_by from ballast.idempotency_keys where scope = 'held' and key = 'k3'), 'a', '... so the setting is the holder');
select set_config('ballast.idempotency_owner', '', true);
select results_eq($$select outcome from ballast.idempotency_begin('held', 'k4', 'h1', holder => 'req-4')$$,
                  $$values ('started'::text)$$, 'a holder argument needs no setting');
select throws_ok($$select ballast.idempotency_complete('held', 'k4', 200, 'x')$$, '55000',
                 'cannot complete idempotency key ''k4'' in scope ''held'': this caller named no holder (no holder argument, and the setting ballast.idempotency_owner is empty)',
                 'a caller with no holder at all is told so');
select is(current_setting('ballast.idempotency_owner'), '', 'begin with a holder argument leaves the session''s setting alone');

-- bad holder arguments: 22023 naming the value, nothing written
select throws_ok($$select ballast.idempotency_begin('held', 'bad', 'h1', holder => '')$$, '22023',
                 'idempotency holder must be 1 to 255 printable ASCII characters, got an empty string',
                 'an empty holder: 22023 (not read as "no holder")');
select throws_ok($$select ballast.idempotency_begin('held', 'bad', 'h1', holder => repeat('x', 256))$$, '22023',
                 'idempotency holder must be 1 to 255 printable ASCII characters, got 256 characters (''' || repeat('x', 40) || '''...)',
                 '256 characters: 22023');
select throws_ok($$select ballast.idempotency_begin('held', 'bad', 'h1', holder => 'réq-1')$$, '22023',
                 'idempotency holder must be printable ASCII (0x20 to 0x7E), got U+00E9 at position 2 of ''réq-1''',
                 'non-ASCII: 22023 naming the character and the value');
select throws_like($$select ballast.idempotency_begin('held', 'bad', 'h1', holder => E'req\t1')$$,
                   '%printable ASCII%U+0009 at position 4%', 'a tab: 22023');
select throws_ok($$select ballast.idempotency_complete('held', 'k4', 200, 'x', holder => '')$$, '22023', null, 'complete checks the holder too');
select throws_ok($$select ballast.idempotency_release('held', 'k4', '')$$, '22023', null, 'release checks the holder too');
select throws_ok($$select ballast.idempotency_extend('held', 'k4', '1 minute', '')$$, '22023', null, 'extend checks the holder too');
select is((select count(*)::int from ballast.idempotency_keys where scope = 'held' and key = 'bad'), 0, 'rejected holders leave no row');
select is((select locked_by from ballast.idempotency_keys where scope = 'held' and key = 'k4'), 'req-4', 'and take nothing over');

-- one-transaction claim (idempotency_claim) and store (idempotency_store), as the API uses them
select results_eq($$select outcome, status_code, response_body, retry_after_seconds from ballast.idempotency_claim('one', 'k1', 'h1')$$,
                  $$values ('started'::text, null::int, null::text, null::int)$$, 'claim of a new key: started');
select is((select count(*)::int from ballast.idempotency_keys where scope = 'one'), 0, 'the claim writes nothing');
select is((select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
             and classid = 1650551916 and objid::bigint = (hashtext(octet_length('one') || ':' || 'one' || 'k1')::bigint & 4294967295)
             and objsubid = 2),
          1, 'the claim holds a transaction-scoped advisory lock (1650551916, hash of scope and key)');
select lives_ok($$select ballast.idempotency_store('one', 'k1', 'h1', 201, '{"data":1}')$$, 'store the response');
select is((select (status, status_code, response_body, locked_until, locked_by, expires_at between clock_timestamp() + interval '23 hours' and clock_timestamp() + interval '24 hours')::text
             from ballast.idempotency_keys where scope = 'one' and key = 'k1'),
          '(completed,201,"{""data"":1}",,,t)', 'one completed row, kept for the default ttl of 24 hours');
select results_eq($$select outcome, status_code, response_body, retry_after_seconds from ballast.idempotency_claim('one', 'k1', 'h1')$$,
                  $$values ('replay'::text, 201, '{"data":1}'::text, null::int)$$, 'a stored key replays');
select results_eq($$select outcome from ballast.idempotency_claim('one', 'k1', 'h2')$$, $$values ('mismatch'::text)$$,
                  'a different request with the same key: mismatch');
select results_eq($$select outcome, status_code, response_body from ballast.idempotency_begin('one', 'k1', 'h1')$$,
                  $$values ('replay'::text, 201, '{"data":1}'::text)$$, 'idempotency_begin replays what idempotency_store stored');
select throws_ok($$select ballast.idempotency_store('one', 'k1', 'h1', 200, 'again')$$, '40001',
                 'idempotency key ''k1'' in scope ''one'' was stored or claimed by another caller since this transaction claimed it',
                 'a second store of a stored key: 40001 (the primary key is the final arbiter)');
select lives_ok($$select ballast.idempotency_store('one', 'k-ttl', 'h1', 200, 'x', '1 hour')$$, 'store with a ttl');
select ok((select expires_at <= clock_timestamp() + interval '1 hour' from ballast.idempotency_keys where scope = 'one' and key = 'k-ttl'), 'the ttl is kept');
-- a key held through idempotency_begin (code of yours), live lease: in_progress, and store cannot take it
select results_eq($$select outcome from ballast.idempotency_begin('one', 'k2', 'h1', holder => 'req-1')$$, $$values ('started'::text)$$, 'begin holds k2');
select results_eq($$select outcome, retry_after_seconds between 1 and 30 from ballast.idempotency_claim('one', 'k2', 'h1')$$,
                  $$values ('in_progress'::text, true)$$, 'claim of a key held with a live lease: in_progress with retry_after_seconds');
select throws_ok($$select ballast.idempotency_store('one', 'k2', 'h1', 200, 'x')$$, '40001', null, 'store over a live holder: 40001');
-- its lease ran out: claim starts, store takes the key over
update ballast.idempotency_keys set locked_until = clock_timestamp() - interval '1 second' where scope = 'one' and key = 'k2';
select results_eq($$select outcome from ballast.idempotency_claim('one', 'k2', 'h2')$$, $$values ('mismatch'::text)$$,
                  'a run-out lease is not taken over by a different request');
select results_eq($$select outcome from ballast.idempotency_claim('one', 'k2', 'h1')$$, $$values ('started'::text)$$, 'a run-out lease: started');
select lives_ok($$select ballast.idempotency_store('one', 'k2', 'h1', 200, 'taken over')$$, 'store takes the key over');
select is((select (status, response_body, locked_by)::text from ballast.idempotency_keys where scope = 'one' and key = 'k2'),
          '(completed,"taken over",)', 'completed by the store');
select throws_ok($$select ballast.idempotency_complete('one', 'k2', 200, 'late', holder => 'req-1')$$, '55000', null, 'the stale holder cannot complete it');
-- an expired key counts as absent: a different request starts and its store replaces the row
update ballast.idempotency_keys set expires_at = clock_timestamp() - interval '1 second' where scope = 'one' and key = 'k1';
select results_eq($$select outcome from ballast.idempotency_claim('one', 'k1', 'h9')$$, $$values ('started'::text)$$, 'an expired key: started, whatever the request');
select lives_ok($$select ballast.idempotency_store('one', 'k1', 'h9', 200, 'new')$$, 'store replaces the expired row');
select is((select (request_hash, response_body, expires_at > clock_timestamp())::text from ballast.idempotency_keys where scope = 'one' and key = 'k1'),
          '(h9,new,t)', 'the new request''s response, a new expiry');
-- bad input: 22023 naming the value, nothing written
select throws_like($$select * from ballast.idempotency_claim('one', '', 'h1')$$, '%1 to 255 characters, got an empty key%', 'claim: empty key 22023');
select throws_ok($$select * from ballast.idempotency_claim('one', 'k', '')$$, '22023', 'request_hash must be 1 to 256 characters, got 0 characters', 'claim: empty request_hash 22023');
select throws_like($$select ballast.idempotency_store('one', 'bad', 'h1', 600, 'x')$$, '%HTTP status from 100 to 599, got 600%', 'store: status 600 22023');
select throws_ok($$select ballast.idempotency_store('one', 'bad', 'h1', 200, 'x', '31 days')$$, '22023', 'ttl must be positive and at most 30 days, got 31 days', 'store: ttl 31 days 22023');
select throws_like($$select ballast.idempotency_store('one', E'b\tad', 'h1', 200, 'x')$$, '%printable ASCII%', 'store: a tab in the key 22023');
select is((select count(*)::int from ballast.idempotency_keys where scope = 'one' and key in ('bad', E'b\tad', '', 'k')), 0, 'rejected calls leave no row');
select ok(has_function_privilege('ballast_authenticator', 'ballast.idempotency_claim(text, text, text)', 'execute')
          and has_function_privilege('ballast_authenticator', 'ballast.idempotency_store(text, text, text, int, text, interval)', 'execute')
          and not has_function_privilege('ballast_anonymous', 'ballast.idempotency_claim(text, text, text)', 'execute')
          and not has_function_privilege('ballast_anonymous', 'ballast.idempotency_store(text, text, text, int, text, interval)', 'execute'),
          'the authenticator may call claim and store; anonymous may not');

-- privileges: only the API's login role may call the functions; nobody reads the table directly
select ok(has_function_privilege('ballast_authenticator', 'ballast.idempotency_begin(text, text, text, interval, interval, text)', 'execute')
          and has_function_privilege('ballast_authenticator', 'ballast.idempotency_complete(text, text, int, text, text)', 'execute')
          and has_function_privilege('ballast_authenticator', 'ballast.idempotency_release(text, text, text)', 'execute')
          and has_function_privilege('ballast_authenticator', 'ballast.idempotency_extend(text, text, interval, text)', 'execute'),
          'the authenticator may call begin, complete, release and extend');
set local role ballast_anonymous;
select throws_ok($$select ballast.idempotency_begin('t', 'k1', 'h1')$$, '42501', null, 'anonymous cannot call idempotency_begin');
select throws_ok($$select * from ballast.idempotency_keys$$, '42501', null, 'anonymous cannot read the table');
reset role;

select * from finish();
rollback;
