-- Cache invalidation: enqueue with dedup, tag templates through statement-level triggers (collapse on
-- bulk changes), the inbox merge, claims with leases, ack, backoff, dead letters, checks and bad input.
-- One transaction, so now() stands still: lease and backoff times are exact.
begin;
select plan(108);

create schema tap_inv;
create table tap_inv.funds (
  id bigint primary key,
  org_id int,                 -- nullable on purpose: a NULL placeholder renders no tag
  name text not null default 'x',
  size numeric not null default 0
);
insert into tap_inv.funds (id, org_id) select g, g % 5 from generate_series(1, 1200) g;

-- helpers: what the inbox holds (distinct tags), then empty it
create function tap_inv.inbox_tags() returns text[] language sql as
  $$ select coalesce(array_agg(distinct t order by t), '{}') from ballast.cache_invalidation_inbox, unnest(tags) t where t is not null $$;
create function tap_inv.take_inbox() returns text[] language plpgsql as
  $$ declare r text[] := tap_inv.inbox_tags(); begin delete from ballast.cache_invalidation_inbox; return r; end $$;
-- ack and fail the pending rows of these tags with the claims (id, attempts) a worker would hold
create function tap_inv.ack(tags text[]) returns int language sql as
  $$ select ballast.ack_cache_invalidations(coalesce(array_agg(id order by id), '{}'), coalesce(array_agg(attempts order by id), '{}'))
     from ballast.cache_invalidation_queue where tag = any(tags) and processed_at is null $$;
create function tap_inv.fail(tags text[], error text, permanent boolean default false)
returns table (rescheduled int, dead_lettered int, next_attempt_at timestamptz) language sql as
  $$ select * from ballast.fail_cache_invalidations(
       (select coalesce(array_agg(id order by id), '{}') from ballast.cache_invalidation_queue where tag = any(tags) and processed_at is null),
       (select coalesce(array_agg(attempts order by id), '{}') from ballast.cache_invalidation_queue where tag = any(tags) and processed_at is null),
       error, 1000, 60000, permanent) $$;
delete from ballast.cache_invalidation_inbox;

-------------------------------------------------------------------------------- enqueue
select is(ballast.enqueue_cache_invalidation('tap:a'), true, 'enqueue: a new tag is queued');
select is(ballast.enqueue_cache_invalidation('tap:a'), false, 'enqueue: an equal pending tag makes it redundant');
select is((select count(*)::int from ballast.cache_invalidation_queue where tag = 'tap:a'), 1, 'enqueue: one queue row for the tag');
select is(tap_inv.take_inbox(), '{tap:a}', 'enqueue: the redundant call leaves a note in the inbox for the merge');
select is(ballast.enqueue_cache_invalidation('tap:a', 0), true, 'enqueue: window 0 never deduplicates');
select throws_ok($$select ballast.enqueue_cache_invalidation('')$$, '22023', null, 'enqueue: empty tag → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(repeat('x', 513))$$, '22023', null, 'enqueue: 513 characters → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(null)$$, '22004', null, 'enqueue: null tag → 22004');
select throws_ok($$select ballast.enqueue_cache_invalidation('tap:w', -1)$$, '22023', null, 'enqueue: negative window → 22023');
select is((select count(*)::int from ballast.cache_invalidation_queue where tag in ('', 'tap:w') or length(tag) > 512), 0,
          'enqueue: rejected calls queued nothing');
select is(ballast.enqueue_cache_invalidation(repeat('y', 512)), true, 'enqueue: 512 characters is fine');
-- tag characters: no whitespace, control characters or commas (CDN surrogate keys are space- or comma-separated)
select throws_ok($$select ballast.enqueue_cache_invalidation(E'fund:1\nfund:2')$$, '22023', null, 'enqueue: a newline → 22023');
select throws_like($$select ballast.enqueue_cache_invalidation(E'fund:1\nfund:2')$$, '%must not contain whitespace, control characters or commas%U+000A at character 7%',
                   'enqueue: the message names the tag, the character and where it is');
select throws_ok($$select ballast.enqueue_cache_invalidation('fund 1')$$, '22023', null, 'enqueue: a space → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation('fund:1,fund:2')$$, '22023', null, 'enqueue: a comma → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(E'fund:\t1')$$, '22023', null, 'enqueue: a tab → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(E'fund:\u00a01')$$, '22023', null, 'enqueue: a no-break space → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(E'fund:\u200b1')$$, '22023', null, 'enqueue: a zero-width space → 22023');
select throws_ok($$select ballast.enqueue_cache_invalidation(E'fund:\x011')$$, '22023', null, 'enqueue: a control character → 22023');
select is(ballast.enqueue_cache_invalidation('org/7#funds:Zoë$x;a=b|c'), true, 'enqueue: any other printable character is fine');

-------------------------------------------------------------------------------- registration
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['fund:{nope}'])$$, '42703',
                 null, 'register: unknown column → 42703');
select throws_like($$select ballast.invalidate_on_change('tap_inv.funds', array['fund:{nope}'])$$,
                   '%has no column ''nope''%', 'register: the message names the column');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['fund:{id'])$$, '22023', null,
                 'register: unbalanced brace → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['{id}'])$$, '22023', null,
                 'register: a template of nothing but placeholders needs => collapsed → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['fund:{id} => all:{id}'])$$, '22023', null,
                 'register: a collapsed tag with placeholders → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['f:{id}'], 0)$$, '22023', null,
                 'register: collapse_above 0 → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array[]::text[])$$, '22023', null,
                 'register: no templates → 22023');
select throws_ok($$select ballast.invalidate_on_change(null, array['x'])$$, '22004', null, 'register: null table → 22004');
create view tap_inv.v as select * from tap_inv.funds;
select throws_ok($$select ballast.invalidate_on_change('tap_inv.v', array['x'])$$, '42809', null, 'register: a view → 42809');
select is((select count(*)::int from ballast.cache_invalidation_triggers where tbl = 'tap_inv.funds'::regclass), 0,
          'register: failed registrations left nothing behind');
select is((select count(*)::int from pg_trigger where tgrelid = 'tap_inv.funds'::regclass), 0, 'register: and no trigger');

select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['fund {id}'])$$, '22023', null,
                 'register: a space in the template''s text → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array['fund:{id} => all funds'])$$, '22023', null,
                 'register: a space in the collapsed tag → 22023');
select throws_ok($$select ballast.invalidate_on_change('tap_inv.funds', array[E'funds\n'])$$, '22023', null,
                 'register: a newline in a constant tag → 22023');
select lives_ok($$select ballast.invalidate_on_change('tap_inv.funds',
                   array['fund:{id}', 'org:{org_id}:funds', 'funds', 'name:{name} => names'], 100)$$, 'register: valid templates');
select set_eq($$select tgname::text from pg_trigger where tgrelid = 'tap_inv.funds'::regclass$$,
              array['_500_invalidate_cache_insert', '_500_invalidate_cache_update', '_500_invalidate_cache_delete',
                    '_500_invalidate_cache_truncate'], 'register: four statement-level triggers');
select is((select ok from ballast.verify_migration_success() where check_name = 'invalidate_on_change tap_inv.funds'), true,
          'verify: the registered table is ok');
select lives_ok($$select ballast.invalidate_on_change('tap_inv.funds',
                   array['fund:{id}', 'org:{org_id}:funds', 'funds', 'name:{name} => names'], 100)$$, 'register: again (idempotent)');

-------------------------------------------------------------------------------- triggers
update tap_inv.funds set size = size + 1 where id = 7;
select is((select count(*)::int from ballast.cache_invalidation_inbox), 2,
          'update of one row: an inbox row per transition row (OLD, NEW), no aggregate');
select is(tap_inv.take_inbox(), '{fund:7,funds,name:x,org:2:funds}', 'update: one row renders every template once');
update tap_inv.funds set org_id = 3 where id = 7;
select is(tap_inv.take_inbox(), '{fund:7,funds,name:x,org:2:funds,org:3:funds}', 'update: OLD and NEW values both render');
update tap_inv.funds set org_id = null where id = 8;
select is(tap_inv.take_inbox(), '{fund:8,funds,name:x,org:3:funds}', 'update: a NULL placeholder renders no tag');
update tap_inv.funds set size = 1 where id < 0;
select is(tap_inv.take_inbox(), '{}', 'update of no rows: nothing');
update tap_inv.funds set name = repeat('n', 600) where id = 9;
select is(tap_inv.take_inbox(), '{fund:9,funds,name:x,names,org:4:funds}', 'update: a rendered tag over 512 characters falls back to the collapsed tag');
update tap_inv.funds set name = E'two words\n' where id = 10;
select is(tap_inv.take_inbox(), '{fund:10,funds,name:x,names,org:0:funds}', 'update: a rendered tag with whitespace falls back to the collapsed tag');
update tap_inv.funds set name = 'x' where id = 10;
delete from ballast.cache_invalidation_inbox;
update tap_inv.funds set size = size + 1 where id <= 50;
-- 50 funds + 5 orgs + funds + name:x + names (id 9)
select is(cardinality(tap_inv.take_inbox()), 50 + 5 + 3, 'update of 50 rows (OLD+NEW = 100 = collapse_above): every tag');
update tap_inv.funds set size = size + 1 where id <= 80;
select is(cardinality(tap_inv.take_inbox()), 80 + 5 + 3, 'update of 80 rows: counted per template, 80 fund tags ≤ 100 do not collapse');
select is((select count(*)::int from ballast.cache_invalidation_inbox), 0, 'take_inbox empties the inbox');
update tap_inv.funds set size = size + 1 where id <= 16;
select is((select count(*)::int from ballast.cache_invalidation_inbox), 32, 'update of 16 rows: still a row per transition row');
select is(cardinality(tap_inv.take_inbox()), 16 + 5 + 3, 'update of 16 rows: every tag');
update tap_inv.funds set size = size + 1 where id <= 17;
select is((select count(*)::int from ballast.cache_invalidation_inbox), 1, 'update of 17 rows: one aggregated inbox row');
select is(cardinality(tap_inv.take_inbox()), 17 + 5 + 3, 'update of 17 rows: every tag');
-- the trigger runs as the writer: a member may write the table and so append to the inbox, from the trigger only
grant usage on schema tap_inv to ballast_member;
grant select, update on tap_inv.funds to ballast_member;
set local role ballast_member;
update tap_inv.funds set size = size + 1 where id = 11;
select throws_ok($$insert into ballast.cache_invalidation_inbox (tags) values ('{spam}')$$, '42501', null,
                 'inbox: a plain INSERT by a member (not from a trigger) is refused');
reset role;
select is(tap_inv.take_inbox(), '{fund:11,funds,name:x,org:1:funds}', 'a member''s update appends its tags through the trigger');
update tap_inv.funds set size = size + 1;
select is(tap_inv.take_inbox(), '{fund:,funds,name:x,names,org:0:funds,org:1:funds,org:2:funds,org:3:funds,org:4:funds}',
          'bulk update of 1200 rows: fund collapses, 5 orgs do not, the long name already collapsed');
insert into tap_inv.funds (id, org_id) values (5000, 1);
select is(tap_inv.take_inbox(), '{fund:5000,funds,name:x,org:1:funds}', 'insert: NEW renders');
delete from tap_inv.funds where id = 5000;
select is(tap_inv.take_inbox(), '{fund:5000,funds,name:x,org:1:funds}', 'delete: OLD renders');
insert into tap_inv.funds (id, org_id) select g, g from generate_series(10001, 10200) g;
select is(cardinality(tap_inv.take_inbox()), 1 + 1 + 1 + 1, 'insert of 200 rows with 200 orgs: fund and org collapse (> 100)');
truncate tap_inv.funds;
select is(tap_inv.take_inbox(), '{fund:,funds,names,org::funds}', 'truncate: every collapsed and constant tag');
-- a template holding $: the generated function body is dollar-quoted with a tag the body does not contain
create table tap_inv.prices (id int primary key, at timestamptz not null default now());
select lives_ok($$select ballast.invalidate_on_change('tap_inv.prices', array['price$fn$:{id}', '$fn1$', 'at:{at} => prices'])$$,
                'register: templates containing $fn$ and $fn1$');
insert into tap_inv.prices (id, at) values (1, '2026-01-02 03:04:05+00');
select is(tap_inv.take_inbox(), '{$fn1$,price$fn$:1,prices}', 'insert: the $ templates render; a timestamp (it prints a space) collapses');
select ok(ballast.stop_invalidating('tap_inv.prices'), 'stop_invalidating: the $ table');

-------------------------------------------------------------------------------- merge, claim, ack, fail
delete from ballast.cache_invalidation_queue;
insert into ballast.cache_invalidation_inbox (tags) values ('{m:1,m:2,m:1,NULL}'), ('{m:2,m:3,""}');
select is(ballast.merge_cache_invalidation_inbox(), 3, 'merge: distinct tags of all inbox rows, without NULL (a NULL placeholder) and empty');
insert into ballast.cache_invalidation_inbox (tags) values ('{m:1,m:4}');
select is(ballast.merge_cache_invalidation_inbox(), 1, 'merge: a tag pending and unclaimed absorbs the new one');
select is((select count(*)::int from ballast.cache_invalidation_inbox), 0, 'merge: the inbox is empty');
insert into ballast.cache_invalidation_inbox (tags) values (array['m:5', repeat('z', 513)]);
select is(ballast.merge_cache_invalidation_inbox(), 1, 'merge: a tag over 512 characters in the inbox is dropped, the rest merge');
delete from ballast.cache_invalidation_queue where tag = 'm:5';
insert into ballast.cache_invalidation_inbox (tags) values (array['m:5', E'm:\n6', 'm 7', 'm,8']);
select is(ballast.merge_cache_invalidation_inbox(), 1, 'merge: a tag with whitespace or a comma (a forged inbox row) is dropped');
delete from ballast.cache_invalidation_queue where tag = 'm:5';

select is((select array_agg(tag order by tag) from ballast.drain_cache_invalidation_queue(10, 30)), '{m:1,m:2,m:3,m:4}',
          'drain: claims the due rows');
select is((select count(*)::int from ballast.cache_invalidation_queue
           where leased_until = now() + interval '30 seconds' and next_attempt_at = leased_until and attempts = 1), 4,
          'drain: the claim leases them for lease_seconds');
select is((select count(*)::int from ballast.drain_cache_invalidation_queue(10, 30)), 0, 'drain: leased rows are not claimed again');
insert into ballast.cache_invalidation_inbox (tags) values ('{m:1}');
select is(ballast.merge_cache_invalidation_inbox(), 1, 'merge: a claimed (leased) row does not absorb a new equal tag');
select is((select count(*)::int from ballast.drain_cache_invalidation_queue(10, 30) where tag = 'm:1'), 1,
          'drain: the new m:1 is claimed on its own');
update ballast.cache_invalidation_queue set next_attempt_at = now() - interval '1 second', leased_until = now() - interval '1 second'
 where tag = 'm:2';
select is((select attempts from ballast.drain_cache_invalidation_queue(10, 30) where tag = 'm:2'), 2,
          'drain: a row whose lease ran out (crashed consumer) comes back, attempts 2');
-- lease fencing: the claim of a worker whose lease ran out
select is(ballast.ack_cache_invalidations(array(select id from ballast.cache_invalidation_queue where tag = 'm:2'), '{1}'), 0,
          'ack: a stale claim (attempts 1, re-claimed since as attempts 2) acks nothing');
select is((select rescheduled from ballast.fail_cache_invalidations(array(select id from ballast.cache_invalidation_queue where tag = 'm:2'), '{1}', 'late')), 0,
          'fail: a stale claim fails nothing');
select is((select row(attempts, retry_count, leased_until = now() + interval '30 seconds')::text from ballast.cache_invalidation_queue where tag = 'm:2'),
          '(2,0,t)', 'the row stays with its current claim');
update ballast.cache_invalidation_queue set leased_until = now() - interval '1 second' where tag = 'm:3';
insert into ballast.cache_invalidation_inbox (tags) values ('{m:3}');
select is(ballast.merge_cache_invalidation_inbox(), 1, 'merge: a claimed row whose lease ran out does not absorb a new equal tag either');
select is(ballast.enqueue_cache_invalidation('m:4'), true, 'enqueue: a claimed row does not cover a new change');
delete from ballast.cache_invalidation_queue where tag in ('m:3', 'm:4') and attempts = 0;
delete from ballast.cache_invalidation_inbox;
select throws_ok($$select ballast.ack_cache_invalidations('{1,2}', '{1}')$$, '22023', null, 'ack: ids and claim_attempts of different lengths → 22023');
select throws_ok($$select ballast.ack_cache_invalidations('{1}', null)$$, '22004', null, 'ack: null claim_attempts → 22004');

select is(tap_inv.ack('{m:3,m:4}'), 2, 'ack: two rows');
select is((select count(*)::int from ballast.cache_invalidation_queue where tag in ('m:3', 'm:4') and processed_at = now() and leased_until is null), 2,
          'ack: processed_at set, lease cleared');

update ballast.cache_invalidation_queue set max_retries = 3 where tag = 'm:2';
select is((select rescheduled from tap_inv.fail('{m:2}', 'HTTP 500')), 1,
          'fail: rescheduled');
select is((select next_attempt_at - now() from ballast.cache_invalidation_queue where tag = 'm:2'), interval '1 second', 'fail 1: retry after base');
select tap_inv.fail('{m:2}', 'HTTP 500');
select is((select next_attempt_at - now() from ballast.cache_invalidation_queue where tag = 'm:2'), interval '2 seconds', 'fail 2: twice as long');
select is((select retry_count from ballast.cache_invalidation_queue where tag = 'm:2'), 2, 'fail: retry_count counts failures');
select is((select dead_lettered from tap_inv.fail('{m:2}', 'HTTP 500')), 1,
          'fail 3 of max_retries 3: dead letter');
select is((select row(retry_count, last_error)::text from ballast.cache_invalidation_dead_letters where tag = 'm:2'), '(3,"HTTP 500")',
          'dead letter keeps the retries and the last error');
update ballast.cache_invalidation_queue set retry_count = 30, max_retries = 100 where tag = 'm:1' and processed_at is null;
select tap_inv.fail('{m:1}', 'x');
select is((select max(next_attempt_at) - now() from ballast.cache_invalidation_queue where tag = 'm:1'), interval '60 seconds', 'fail: backoff is capped');
select throws_ok($$select * from ballast.fail_cache_invalidations('{1}', '{1}', 'x', 0, 10)$$, '22023', null, 'fail: base 0 → 22023');

-- left: the two m:1 rows (failed, waiting), m:3 and m:4 delivered, m:2 dead
select is((select row(pending, leased, retried, dead)::text from ballast.cache_invalidation_stats), '(2,0,2,1)',
          'stats: pending, leased, retried, dead');
select is(ballast.requeue_cache_invalidation_dead_letters(), 1, 'requeue: the dead letter is queued again');
-- a tag the sink refused for good (a 4xx): a dead letter at the first failure
select is((select row(rescheduled, dead_lettered)::text from tap_inv.fail('{m:2}', 'HTTP 400', permanent => true)), '(0,1)',
          'fail permanent: a dead letter at once');
select is((select row(retry_count, last_error)::text from ballast.cache_invalidation_dead_letters where tag = 'm:2'), '(1,"HTTP 400")',
          'fail permanent: after one failure, with its error');

-------------------------------------------------------------------------------- checks, bad drain input, access
insert into ballast.cache_invalidation_dead_letters (id, tag, enqueued_at, failed_at, retry_count, attempts, last_error)
values (-1, 'tap:old', now() - interval '3 days', now() - interval '2 days', 10, 10, 'HTTP 503');
select matches((select detail from ballast.verify_migration_success() where check_name = 'cache invalidation dead letters older than a day'),
               '^warning: 1 dead letters older than a day', 'verify: old dead letters are a warning in the detail');
drop trigger _500_invalidate_cache_update on tap_inv.funds;
select is((select ok from ballast.verify_migration_success() where check_name = 'invalidate_on_change tap_inv.funds'), false,
          'verify: a missing trigger is not ok');
select is(ballast.stop_invalidating('tap_inv.funds'), true, 'stop_invalidating: removes the registration');
select is((select count(*)::int from pg_trigger where tgrelid = 'tap_inv.funds'::regclass), 0, 'stop_invalidating: and the triggers');

select throws_ok($$select * from ballast.drain_cache_invalidation_queue(0, 30)$$, '22023', null, 'drain: batch_size 0 → 22023');
select throws_ok($$select * from ballast.drain_cache_invalidation_queue(10, 0)$$, '22023', null, 'drain: lease_seconds 0 → 22023');


-------------------------------------------------------------------------------- the wake-up job, in the schema of setting worker_schema
select ballast_worker.remove_job('ballast:deliver_cache_invalidations');  -- the requeue above queued one
select is(ballast.wake_cache_invalidation_worker(), true, 'wake: queues the delivery job (default schema ballast_worker)');
select is((select task_identifier from ballast_worker.jobs where key = 'ballast:deliver_cache_invalidations'),
          'ballast_deliver_cache_invalidations', 'wake: the namespaced task, under the delivery job key');
select is(ballast.wake_cache_invalidation_worker(), false, 'wake: a job already waiting, nothing more queued');
\ir stand_in_worker_schema.psql
select ballast.configure('worker_schema', '"tap_gw"');
select is(ballast.wake_cache_invalidation_worker(), true, 'wake: with worker_schema set, queues into that schema');
select is((select task_identifier from tap_gw.jobs where key = 'ballast:deliver_cache_invalidations'),
          'ballast_deliver_cache_invalidations', 'wake: the job is in the app''s schema');
select is(ballast.wake_cache_invalidation_worker(), false, 'wake: and sees it waiting there');
select ballast.configure('worker_schema', '"tap_gw_not_yet"');
set local client_min_messages = warning;  -- its notice says why
select is(ballast.wake_cache_invalidation_worker(), false, 'wake: no graphile-worker in that schema yet: nothing queued, no error');
reset client_min_messages;
select ballast.configure('worker_schema', null);

set local role ballast_member;
select throws_ok('select * from ballast.cache_invalidation_queue', '42501', null, 'member cannot read the queue');
reset role;

select * from finish();
rollback;
