-- ballast.rate_limit_take(): token bucket semantics, refill, bad input, privileges, pruning.
-- Time passing is simulated by moving a bucket's updated_at back (as the superuser).
begin;
select plan(24);

-- a new bucket starts full: three takes of a capacity-3 bucket pass, the fourth is refused
select is((select row(allowed, remaining, retry_after_ms)::text from ballast.rate_limit_take('test:a', 3, 1)), '(t,2,0)', 'first take from a new bucket is allowed, 2 left');
select is((select row(allowed, remaining)::text from ballast.rate_limit_take('test:a', 3, 1)), '(t,1)', 'second take allowed, 1 left');
select is((select row(allowed, remaining)::text from ballast.rate_limit_take('test:a', 3, 1)), '(t,0)', 'third take allowed, 0 left');
select is((select allowed from ballast.rate_limit_take('test:a', 3, 1)), false, 'fourth take is refused');
select ok((select retry_after_ms between 1 and 1000 from ballast.rate_limit_take('test:a', 3, 1)), 'a refusal says when a token will be back (≤ 1 s at 1 token/s)');
select is((select granted from ballast.rate_limit_buckets where bucket = 'test:a'), false, 'the bucket records that its last take was refused');

-- refill: 2 seconds at 1 token/s gives 2 tokens back; a refused take costs nothing
update ballast.rate_limit_buckets set updated_at = updated_at - interval '2 seconds' where bucket = 'test:a';
select is((select row(allowed, remaining)::text from ballast.rate_limit_take('test:a', 3, 1)), '(t,1)', 'after 2 s two tokens are back: allowed, 1 left');
-- refill never goes past the capacity
update ballast.rate_limit_buckets set updated_at = updated_at - interval '1 hour' where bucket = 'test:a';
select is((select remaining from ballast.rate_limit_take('test:a', 3, 1)), 2, 'a long pause refills to the capacity, not beyond');
-- a smaller capacity than before caps the bucket at once
select is((select remaining from ballast.rate_limit_take('test:a', 1, 1)), 0, 'lowering the capacity caps what is left');

-- cost > 1
select is((select row(allowed, remaining)::text from ballast.rate_limit_take('test:b', 10, 1, 4)), '(t,6)', 'cost 4 takes 4 tokens');
select is((select row(allowed, remaining)::text from ballast.rate_limit_take('test:b', 10, 1, 7)), '(f,6)', 'cost 7 with 6 left is refused and takes nothing');
select ok((select retry_after_ms between 900 and 1100 from ballast.rate_limit_take('test:b', 10, 1, 7)), 'retry_after_ms is the time until 7 tokens (about 1 s)');

-- full_at says when the bucket is full again; prune deletes only full buckets
select ok((select full_at > clock_timestamp() from ballast.rate_limit_buckets where bucket = 'test:b'), 'a bucket with tokens missing is full in the future');
insert into ballast.rate_limit_buckets (bucket, tokens, granted, updated_at, full_at)
values ('test:full', 5, true, now() - interval '1 hour', now() - interval '1 minute');
select cmp_ok(ballast.rate_limit_prune(), '>=', 1, 'prune deletes buckets that are full again');
select ok(not exists (select 1 from ballast.rate_limit_buckets where bucket = 'test:full'), 'the full bucket is gone');
select ok(exists (select 1 from ballast.rate_limit_buckets where bucket = 'test:b'), 'a bucket still refilling is kept');

-- bad input: a specific SQLSTATE, a message naming the value, and no row left behind
select throws_ok($$select * from ballast.rate_limit_take('test:c', 0, 1)$$, '22023', 'rate_limit_take: capacity must be at least 1, got 0', 'capacity 0 is refused');
select throws_ok($$select * from ballast.rate_limit_take('test:c', 5, 0)$$, '22023', 'rate_limit_take: refill_per_second must be greater than 0, got 0', 'refill 0 is refused');
select throws_ok($$select * from ballast.rate_limit_take('test:c', 5, 1, 6)$$, '22023', 'rate_limit_take: cost must be from 1 to capacity (5), got 6', 'a cost above the capacity is refused');
select throws_ok($$select * from ballast.rate_limit_take('', 5, 1)$$, '22023', 'rate_limit_take: bucket must be 1..200 characters, got 0', 'an empty bucket name is refused');
select throws_ok($$select * from ballast.rate_limit_take(null, 5, 1)$$, '22023', 'rate_limit_take: bucket must be 1..200 characters, got null', 'a null bucket name is refused');
select ok(not exists (select 1 from ballast.rate_limit_buckets where bucket in ('test:c', '')), 'refused calls leave no bucket behind');

-- privileges: the authenticator may take (directly granted: it is NOINHERIT), visitors may not
set local role ballast_authenticator; -- it has no usage on the public schema (pgTAP): keep the answer in a setting
select set_config('test.allowed', (select allowed::text from ballast.rate_limit_take('test:d', 1, 1)), true);
reset role;
select is(current_setting('test.allowed'), 'true', 'ballast_authenticator may call rate_limit_take');
set local role ballast_member;
select throws_ok($$select * from ballast.rate_limit_take('test:e', 1, 1)$$, '42501', null, 'ballast_member may not call rate_limit_take');
reset role;

select * from finish();
rollback;
