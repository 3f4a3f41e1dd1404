-- A sweep of bad input (issue 16, item 18): every public routine of ballast, called with bad arguments,
-- must fail with the SQLSTATE it documents and leave every kit table as it was.
--
-- "Public" here: every routine in schema ballast that has a COMMENT, does not return trigger, and takes
-- at least one argument. The kit marks no other helpers as internal, so all commented routines count;
-- routines without parameters (version(), verify_migration_success(), metrics__*(), current_*() ...)
-- cannot be handed a bad argument and are out by this rule. Functions generated at run time
-- (register_matview's request triggers, invalidate_on_change's tg__*) return trigger and are out too.
--
-- The cases were generated from one vocabulary of bad values per argument type (text: null, '', 10k
-- characters, E'a\nb', an injection string; int: null, -1, 0, 2147483647; interval: null, '-1 day',
-- '1000 years', '0'; timestamptz: null, +/-infinity; regclass: null, pg_class, a view, a dropped oid;
-- jsonb: null, '[]', '"x"', '{}'; arrays: null, '{}', '{null}'), one argument bad at a time and the others
-- valid, and kept only where the call is genuinely bad and the function answers with a SQLSTATE its
-- code or its COMMENT names (add_cleanup_policy's come from check_cleanup_policy, run by the policy
-- table's validate trigger). Values a function accepts by design are not cases. Routines for which no
-- value of the vocabulary is bad (verdicts that return a problem instead of raising, pure helpers that
-- map null to null, lookups that are a no-op for an unknown object) are listed in sweep_no_bad_input
-- with the reason, so that a new public routine without a row fails the coverage test below.
begin;
-- One snapshot for the whole sweep: the before/after comparison of every kit table must see the sweep's
-- own calls only, not what pg_cron's jobs commit meanwhile (the refresh processor writes mv_refresh_log).
set transaction isolation level repeatable read;
set local client_min_messages = warning;

-- fixtures: a table, a registered matview over it with a cleanup policy, a plain view, a dropped oid,
-- a begun idempotency key held by 'sweep', and a role of the user's for exempt_role
create table public.sweep_t (id bigint primary key, owner_id uuid, org_id uuid, created_at timestamptz not null default now(), note text);
create index on public.sweep_t (created_at);
grant select, insert, update, delete on public.sweep_t to ballast_owner;
create materialized view public.sweep_mv as select id from public.sweep_t;
create unique index on public.sweep_mv (id);
alter materialized view public.sweep_mv owner to ballast_owner;
create view public.sweep_v as select id from public.sweep_t;
create table public.sweep_dropped (id int);
create temp table sweep_dropped_oid as select 'public.sweep_dropped'::regclass::oid as oid;
drop table public.sweep_dropped;
create role sweep_test_role;
do $$
begin
  perform ballast.register_matview('public.sweep_mv', '{public.sweep_t}');
  perform ballast.add_cleanup_policy('public.sweep_t', 'created_at', '1 day');
  perform ballast.idempotency_begin('sweep', 'sweep', 'h', holder => 'sweep');
end
$$;

create temp table sweep_cases (id serial, fn regprocedure not null, call text not null, sqlstate char(5) not null, description text not null);
insert into sweep_cases (fn, call, sqlstate, description) values
  -- ack_cache_invalidations
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => null::int[])$$, '22004', 'ack_cache_invalidations: claim_attempts = null'),
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{}'::int[])$$, '22023', 'ack_cache_invalidations: claim_attempts = {}'),
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => '{}'::bigint[], claim_attempts => '{1}'::int[])$$, '22023', 'ack_cache_invalidations: ids = {}'),
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => null::bigint[], claim_attempts => '{1}'::int[])$$, '22004', 'ack_cache_invalidations: ids = null'),
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => '{null}'::bigint[], claim_attempts => '{1}'::int[])$$, '22004', 'ack_cache_invalidations: ids = {null}'),
  ('ballast.ack_cache_invalidations(bigint[],integer[])', $$select ballast.ack_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{null}'::int[])$$, '22004', 'ack_cache_invalidations: claim_attempts = {null}'),
  -- add_cleanup_policy
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_pause => null::interval)$$, '22023', 'add_cleanup_policy: batch_pause = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_pause => '-1 day'::interval)$$, '22023', 'add_cleanup_policy: batch_pause = -1 day'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_pause => '1000 years'::interval)$$, '22023', 'add_cleanup_policy: batch_pause = 1000 years'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_size => null::int)$$, '22023', 'add_cleanup_policy: batch_size = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_size => 2147483647)$$, '22023', 'add_cleanup_policy: batch_size = max int'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_size => 0)$$, '22023', 'add_cleanup_policy: batch_size = 0'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, batch_size => -1)$$, '22023', 'add_cleanup_policy: batch_size = -1'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, extra_condition => E'a\nb')$$, '42601', 'add_cleanup_policy: extra_condition = control chars'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, extra_condition => '')$$, '42601', 'add_cleanup_policy: extra_condition = empty'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, extra_condition => repeat('x', 10000))$$, '42601', 'add_cleanup_policy: extra_condition = 10k chars'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, extra_condition => 'x''; drop table ballast.settings; --')$$, '42601', 'add_cleanup_policy: extra_condition = injection'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, max_runtime => '0'::interval)$$, '22023', 'add_cleanup_policy: max_runtime = 0'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, max_runtime => '1000 years'::interval)$$, '22023', 'add_cleanup_policy: max_runtime = 1000 years'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, max_runtime => null::interval)$$, '22023', 'add_cleanup_policy: max_runtime = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, max_runtime => '-1 day'::interval)$$, '22023', 'add_cleanup_policy: max_runtime = -1 day'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => null::interval)$$, '22023', 'add_cleanup_policy: retain = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '-1 day'::interval)$$, '22023', 'add_cleanup_policy: retain = -1 day'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '0'::interval)$$, '22023', 'add_cleanup_policy: retain = 0'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, schedule => '')$$, '22023', 'add_cleanup_policy: schedule = empty'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, schedule => null::text)$$, '22004', 'add_cleanup_policy: schedule = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, schedule => repeat('x', 10000))$$, '22023', 'add_cleanup_policy: schedule = 10k chars'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, schedule => E'a\nb')$$, '22023', 'add_cleanup_policy: schedule = control chars'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval, schedule => 'x''; drop table ballast.settings; --')$$, '22023', 'add_cleanup_policy: schedule = injection'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => {dropped_oid}::oid::regclass, time_column => 'created_at'::name, retain => '2 days'::interval)$$, '42P01', 'add_cleanup_policy: tbl = dropped oid'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => null::regclass, time_column => 'created_at'::name, retain => '2 days'::interval)$$, '22004', 'add_cleanup_policy: tbl = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'pg_class'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval)$$, '42703', 'add_cleanup_policy: tbl = catalog table pg_class'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_v'::regclass, time_column => 'created_at'::name, retain => '2 days'::interval)$$, '42809', 'add_cleanup_policy: tbl = a view'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => ''::name, retain => '2 days'::interval)$$, '42703', 'add_cleanup_policy: time_column = empty'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => null::name, retain => '2 days'::interval)$$, '22004', 'add_cleanup_policy: time_column = null'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'no_such_column'::name, retain => '2 days'::interval)$$, '42703', 'add_cleanup_policy: time_column = no such column'),
  ('ballast.add_cleanup_policy(regclass,name,interval,integer,text,text,interval,interval)', $$select ballast.add_cleanup_policy(tbl => 'public.sweep_t'::regclass, time_column => 'x''; drop table ballast.settings; --'::name, retain => '2 days'::interval)$$, '42703', 'add_cleanup_policy: time_column = injection'),
  -- assert_matview
  ('ballast.assert_matview(regclass,text)', $$select ballast.assert_matview(matview => null::regclass, fn => 'sweep')$$, '22004', 'assert_matview: matview = null'),
  ('ballast.assert_matview(regclass,text)', $$select ballast.assert_matview(matview => {dropped_oid}::oid::regclass, fn => 'sweep')$$, '42809', 'assert_matview: matview = dropped oid'),
  ('ballast.assert_matview(regclass,text)', $$select ballast.assert_matview(matview => 'public.sweep_v'::regclass, fn => 'sweep')$$, '42809', 'assert_matview: matview = a view'),
  ('ballast.assert_matview(regclass,text)', $$select ballast.assert_matview(matview => 'pg_class'::regclass, fn => 'sweep')$$, '42809', 'assert_matview: matview = catalog table pg_class'),
  -- assert_matview_refreshable
  ('ballast.assert_matview_refreshable(regclass,text)', $$select ballast.assert_matview_refreshable(matview => 'pg_class'::regclass, fn => 'sweep')$$, '42501', 'assert_matview_refreshable: matview = catalog table pg_class'),
  ('ballast.assert_matview_refreshable(regclass,text)', $$select ballast.assert_matview_refreshable(matview => 'public.sweep_v'::regclass, fn => 'sweep')$$, '42501', 'assert_matview_refreshable: matview = a view'),
  ('ballast.assert_matview_refreshable(regclass,text)', $$select ballast.assert_matview_refreshable(matview => null::regclass, fn => 'sweep')$$, '22004', 'assert_matview_refreshable: matview = null'),
  ('ballast.assert_matview_refreshable(regclass,text)', $$select ballast.assert_matview_refreshable(matview => {dropped_oid}::oid::regclass, fn => 'sweep')$$, '42P01', 'assert_matview_refreshable: matview = dropped oid'),
  -- assert_relation
  ('ballast.assert_relation(regclass,text)', $$select ballast.assert_relation(tbl => null::regclass, fn => 'sweep')$$, '22004', 'assert_relation: tbl = null'),
  ('ballast.assert_relation(regclass,text)', $$select ballast.assert_relation(tbl => {dropped_oid}::oid::regclass, fn => 'sweep')$$, '42P01', 'assert_relation: tbl = dropped oid'),
  -- audit_admin_rule_function
  ('ballast.audit_admin_rule_function(jsonb)', $$select ballast.audit_admin_rule_function(rule => '"x"'::jsonb)$$, '42883', 'audit_admin_rule_function: rule = "x"'),
  ('ballast.audit_admin_rule_function(jsonb)', $$select ballast.audit_admin_rule_function(rule => '[]'::jsonb)$$, '22023', 'audit_admin_rule_function: rule = []'),
  ('ballast.audit_admin_rule_function(jsonb)', $$select ballast.audit_admin_rule_function(rule => '{}'::jsonb)$$, '22023', 'audit_admin_rule_function: rule = {}'),
  -- cache_tag_template
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'pg_class'::regclass, template => 'sweep:{id}')$$, '42703', 'cache_tag_template: tbl = catalog table pg_class'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => {dropped_oid}::oid::regclass, template => 'sweep:{id}')$$, '42703', 'cache_tag_template: tbl = dropped oid'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'public.sweep_t'::regclass, template => 'x''; drop table ballast.settings; --')$$, '22023', 'cache_tag_template: template = injection'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'public.sweep_t'::regclass, template => E'a\nb')$$, '22023', 'cache_tag_template: template = control chars'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'public.sweep_t'::regclass, template => null::text)$$, '22004', 'cache_tag_template: template = null'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'public.sweep_t'::regclass, template => '')$$, '22023', 'cache_tag_template: template = empty'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => 'public.sweep_t'::regclass, template => repeat('x', 10000))$$, '22023', 'cache_tag_template: template = 10k chars'),
  ('ballast.cache_tag_template(regclass,text)', $$select ballast.cache_tag_template(tbl => null::regclass, template => 'sweep:{id}')$$, '22004', 'cache_tag_template: tbl = null'),
  -- check_cache_claims
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => '{1}'::bigint[], claim_attempts => null::int[])$$, '22004', 'check_cache_claims: claim_attempts = null'),
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => '{1}'::bigint[], claim_attempts => '{}'::int[])$$, '22023', 'check_cache_claims: claim_attempts = {}'),
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => null::bigint[], claim_attempts => '{1}'::int[])$$, '22004', 'check_cache_claims: ids = null'),
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => '{}'::bigint[], claim_attempts => '{1}'::int[])$$, '22023', 'check_cache_claims: ids = {}'),
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => '{null}'::bigint[], claim_attempts => '{1}'::int[])$$, '22004', 'check_cache_claims: ids = {null}'),
  ('ballast.check_cache_claims(text,bigint[],integer[])', $$select ballast.check_cache_claims(fn => 'sweep', ids => '{1}'::bigint[], claim_attempts => '{null}'::int[])$$, '22004', 'check_cache_claims: claim_attempts = {null}'),
  -- check_cache_tag
  ('ballast.check_cache_tag(text,text)', $$select ballast.check_cache_tag(tag => repeat('x', 10000))$$, '22023', 'check_cache_tag: tag = 10k chars'),
  ('ballast.check_cache_tag(text,text)', $$select ballast.check_cache_tag(tag => E'a\nb')$$, '22023', 'check_cache_tag: tag = control chars'),
  ('ballast.check_cache_tag(text,text)', $$select ballast.check_cache_tag(tag => 'x''; drop table ballast.settings; --')$$, '22023', 'check_cache_tag: tag = injection'),
  ('ballast.check_cache_tag(text,text)', $$select ballast.check_cache_tag(tag => null::text)$$, '22004', 'check_cache_tag: tag = null'),
  ('ballast.check_cache_tag(text,text)', $$select ballast.check_cache_tag(tag => '')$$, '22023', 'check_cache_tag: tag = empty'),
  -- check_cleanup_policy
  ('ballast.check_cleanup_policy(ballast.cleanup_policies)', $$select ballast.check_cleanup_policy(p => null::ballast.cleanup_policies)$$, '22004', 'check_cleanup_policy: p = null'),
  -- cleanup_batch
  ('ballast.cleanup_batch(regclass,timestamp with time zone)', $$select ballast.cleanup_batch(tbl => 'public.sweep_t'::regclass, cutoff => 'infinity'::timestamptz)$$, '22023', 'cleanup_batch: cutoff = infinity'),
  ('ballast.cleanup_batch(regclass,timestamp with time zone)', $$select ballast.cleanup_batch(tbl => 'pg_class'::regclass)$$, '22023', 'cleanup_batch: tbl = catalog table pg_class'),
  ('ballast.cleanup_batch(regclass,timestamp with time zone)', $$select ballast.cleanup_batch(tbl => null::regclass)$$, '22023', 'cleanup_batch: tbl = null'),
  ('ballast.cleanup_batch(regclass,timestamp with time zone)', $$select ballast.cleanup_batch(tbl => 'public.sweep_v'::regclass)$$, '22023', 'cleanup_batch: tbl = a view'),
  ('ballast.cleanup_batch(regclass,timestamp with time zone)', $$select ballast.cleanup_batch(tbl => {dropped_oid}::oid::regclass)$$, '22023', 'cleanup_batch: tbl = dropped oid'),
  -- cleanup_index_problem
  ('ballast.cleanup_index_problem(regclass,name)', $$select ballast.cleanup_index_problem(tbl => 'public.sweep_t'::regclass, col => null::name)$$, '22004', 'cleanup_index_problem: col = null'),
  -- configure
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => '', value => '[]'::jsonb)$$, '22023', 'configure: name = empty'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => null::text, value => '[]'::jsonb)$$, '22023', 'configure: name = null'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => repeat('x', 10000), value => '[]'::jsonb)$$, '22023', 'configure: name = 10k chars'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => E'a\nb', value => '[]'::jsonb)$$, '22023', 'configure: name = control chars'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => 'x''; drop table ballast.settings; --', value => '[]'::jsonb)$$, '22023', 'configure: name = injection'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => 'verify_schemas', value => '{}'::jsonb)$$, '22023', 'configure: value = {}'),
  ('ballast.configure(text,jsonb)', $$select ballast.configure(name => 'verify_schemas', value => '"x"'::jsonb)$$, '22023', 'configure: value = "x"'),
  -- cron_field_values
  ('ballast.cron_field_values(text,integer,integer,text[])', $$select ballast.cron_field_values(field => '*', lo => 0, hi => 2147483647)$$, '22023', 'cron_field_values: hi = max int'),
  ('ballast.cron_field_values(text,integer,integer,text[])', $$select ballast.cron_field_values(field => '*', lo => -1, hi => 2147483647)$$, '22023', 'cron_field_values: lo = -1, hi = max int'),
  -- cron_next
  ('ballast.cron_next(text,timestamp with time zone)', $$select ballast.cron_next(schedule => 'x''; drop table ballast.settings; --', after => now())$$, '22023', 'cron_next: schedule = injection'),
  ('ballast.cron_next(text,timestamp with time zone)', $$select ballast.cron_next(schedule => '', after => now())$$, '22023', 'cron_next: schedule = empty'),
  ('ballast.cron_next(text,timestamp with time zone)', $$select ballast.cron_next(schedule => repeat('x', 10000), after => now())$$, '22023', 'cron_next: schedule = 10k chars'),
  ('ballast.cron_next(text,timestamp with time zone)', $$select ballast.cron_next(schedule => E'a\nb', after => now())$$, '22023', 'cron_next: schedule = control chars'),
  -- create_request_trigger_function
  ('ballast.create_request_trigger_function(regclass,regclass)', $$select ballast.create_request_trigger_function(request_flag => null::regclass, matview => 'public.sweep_mv'::regclass)$$, '22004', 'create_request_trigger_function: request_flag = null'),
  ('ballast.create_request_trigger_function(regclass,regclass)', $$select ballast.create_request_trigger_function(request_flag => {dropped_oid}::oid::regclass, matview => 'public.sweep_mv'::regclass)$$, '42P01', 'create_request_trigger_function: request_flag = dropped oid'),
  ('ballast.create_request_trigger_function(regclass,regclass)', $$select ballast.create_request_trigger_function(request_flag => 'public.sweep_t'::regclass, matview => null::regclass)$$, '22004', 'create_request_trigger_function: matview = null'),
  ('ballast.create_request_trigger_function(regclass,regclass)', $$select ballast.create_request_trigger_function(request_flag => 'public.sweep_t'::regclass, matview => {dropped_oid}::oid::regclass)$$, '42P01', 'create_request_trigger_function: matview = dropped oid'),
  -- disable_audit
  ('ballast.disable_audit(regclass)', $$select ballast.disable_audit(tbl => null::regclass)$$, '22004', 'disable_audit: tbl = null'),
  -- drain_cache_invalidation_queue
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => -1, lease_seconds => 1)$$, '22023', 'drain_cache_invalidation_queue: batch_size = -1'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => null::int, lease_seconds => 1)$$, '22023', 'drain_cache_invalidation_queue: batch_size = null'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 0, lease_seconds => 1)$$, '22023', 'drain_cache_invalidation_queue: batch_size = 0'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 2147483647, lease_seconds => 1)$$, '22023', 'drain_cache_invalidation_queue: batch_size = max int'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 1, lease_seconds => null::int)$$, '22023', 'drain_cache_invalidation_queue: lease_seconds = null'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 1, lease_seconds => -1)$$, '22023', 'drain_cache_invalidation_queue: lease_seconds = -1'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 1, lease_seconds => 0)$$, '22023', 'drain_cache_invalidation_queue: lease_seconds = 0'),
  ('ballast.drain_cache_invalidation_queue(integer,integer)', $$select ballast.drain_cache_invalidation_queue(batch_size => 1, lease_seconds => 2147483647)$$, '22023', 'drain_cache_invalidation_queue: lease_seconds = max int'),
  -- drop_cleanup_policy
  ('ballast.drop_cleanup_policy(regclass)', $$select ballast.drop_cleanup_policy(tbl => null::regclass)$$, '22004', 'drop_cleanup_policy: tbl = null'),
  -- enable_audit
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, exclude_columns => '{null}'::text[])$$, '22004', 'enable_audit: exclude_columns = {null}'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, exclude_columns => null::text[])$$, '22004', 'enable_audit: exclude_columns = null'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, org_column => 'x''; drop table ballast.settings; --')$$, '42703', 'enable_audit: org_column = injection'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, org_column => '')$$, '42703', 'enable_audit: org_column = empty'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, org_column => repeat('x', 10000))$$, '42703', 'enable_audit: org_column = 10k chars'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_t'::regclass, org_column => E'a\nb')$$, '42703', 'enable_audit: org_column = control chars'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => null::regclass)$$, '22004', 'enable_audit: tbl = null'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => 'public.sweep_v'::regclass)$$, '42809', 'enable_audit: tbl = a view'),
  -- enqueue_cache_invalidation
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => 'sweep:1', dedup_window_minutes => 2147483647)$$, '22023', 'enqueue_cache_invalidation: dedup_window_minutes = max int'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => 'sweep:1', dedup_window_minutes => null::int)$$, '22023', 'enqueue_cache_invalidation: dedup_window_minutes = null'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => 'sweep:1', dedup_window_minutes => -1)$$, '22023', 'enqueue_cache_invalidation: dedup_window_minutes = -1'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => 'x''; drop table ballast.settings; --')$$, '22023', 'enqueue_cache_invalidation: tag = injection'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => null::text)$$, '22004', 'enqueue_cache_invalidation: tag = null'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => '')$$, '22023', 'enqueue_cache_invalidation: tag = empty'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => repeat('x', 10000))$$, '22023', 'enqueue_cache_invalidation: tag = 10k chars'),
  ('ballast.enqueue_cache_invalidation(text,integer)', $$select ballast.enqueue_cache_invalidation(tag => E'a\nb')$$, '22023', 'enqueue_cache_invalidation: tag = control chars'),
  -- enqueue_error_reports
  ('ballast.enqueue_error_reports(jsonb)', $$select ballast.enqueue_error_reports(reports => null::jsonb)$$, '22023', 'enqueue_error_reports: reports = null'),
  ('ballast.enqueue_error_reports(jsonb)', $$select ballast.enqueue_error_reports(reports => '"x"'::jsonb)$$, '22023', 'enqueue_error_reports: reports = "x"'),
  ('ballast.enqueue_error_reports(jsonb)', $$select ballast.enqueue_error_reports(reports => '{}'::jsonb)$$, '22023', 'enqueue_error_reports: reports = {}'),
  ('ballast.enable_audit(regclass,text[],text)', $$select ballast.enable_audit(tbl => {dropped_oid}::oid::regclass)$$, '42P01', 'enable_audit: tbl = dropped oid'),
  -- epoch_ms
  ('ballast.epoch_ms(timestamp with time zone)', $$select ballast.epoch_ms(ts => 'infinity'::timestamptz)$$, '22008', 'epoch_ms: ts = infinity'),
  ('ballast.epoch_ms(timestamp with time zone)', $$select ballast.epoch_ms(ts => '-infinity'::timestamptz)$$, '22008', 'epoch_ms: ts = -infinity'),
  -- ensure_policy
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, command => E'a\nb', using_expr => 'true')$$, '22023', 'ensure_policy: command = control chars'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, command => null::text, using_expr => 'true')$$, '22023', 'ensure_policy: command = null'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, command => '', using_expr => 'true')$$, '22023', 'ensure_policy: command = empty'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, command => repeat('x', 10000), using_expr => 'true')$$, '22023', 'ensure_policy: command = 10k chars'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, command => 'x''; drop table ballast.settings; --', using_expr => 'true')$$, '22023', 'ensure_policy: command = injection'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => ''::name, using_expr => 'true')$$, '22023', 'ensure_policy: policy_name = empty'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => null::name, using_expr => 'true')$$, '22023', 'ensure_policy: policy_name = null'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, roles => '{}'::name[], using_expr => 'true')$$, '22023', 'ensure_policy: roles = {}'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, roles => '{null}'::name[], using_expr => 'true')$$, '22023', 'ensure_policy: roles = {null}'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, roles => null::name[], using_expr => 'true')$$, '22023', 'ensure_policy: roles = null'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => null::regclass, policy_name => 'created_at'::name, using_expr => 'true')$$, '22004', 'ensure_policy: tbl = null'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_v'::regclass, policy_name => 'created_at'::name, using_expr => 'true')$$, '42809', 'ensure_policy: tbl = a view'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, using_expr => '')$$, '22023', 'ensure_policy: using_expr = empty'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'created_at'::name, using_expr => null::text)$$, '22023', 'ensure_policy: using_expr = null'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'sweep'::name, using_expr => 'x''; drop table ballast.settings; --')$$, '22023', 'ensure_policy: using_expr = injection (does not parse)'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'sweep'::name, using_expr => 'no_such_column = 1')$$, '22023', 'ensure_policy: using_expr = unknown column'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => 'public.sweep_t'::regclass, policy_name => 'sweep'::name, command => 'insert', check_expr => E'a\nb')$$, '22023', 'ensure_policy: check_expr = control chars (unknown columns)'),
  -- ensure_statement_triggers
  ('ballast.ensure_statement_triggers(regclass,text,text,name,name)', $$select ballast.ensure_statement_triggers(null::regclass, '_sweep_', 'ballast.tg_audit_log__append_only()', 'n', 'o')$$, '22004', 'ensure_statement_triggers: tbl = null'),
  ('ballast.ensure_statement_triggers(regclass,text,text,name,name)', $$select ballast.ensure_statement_triggers({dropped_oid}::oid::regclass, '_sweep_', 'ballast.tg_audit_log__append_only()', 'n', 'o')$$, '42P01', 'ensure_statement_triggers: tbl = dropped oid'),
  ('ballast.ensure_statement_triggers(regclass,text,text,name,name)', $$select ballast.ensure_statement_triggers('public.sweep_t'::regclass, null, 'ballast.tg_audit_log__append_only()', 'n', 'o')$$, '22004', 'ensure_statement_triggers: name_prefix = null'),
  ('ballast.ensure_statement_triggers(regclass,text,text,name,name)', $$select ballast.ensure_statement_triggers('public.sweep_t'::regclass, '_sweep_', '', 'n', 'o')$$, '22004', 'ensure_statement_triggers: fn_call = empty'),
  ('ballast.ensure_statement_triggers(regclass,text,text,name,name)', $$select ballast.ensure_statement_triggers('public.sweep_t'::regclass, '_sweep_', 'ballast.tg_audit_log__append_only()', null, 'o')$$, '22004', 'ensure_statement_triggers: new_table = null'),
  -- ensure_trigger
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => 'created_at'::name, definition => null::text)$$, '22023', 'ensure_trigger: definition = null'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => 'created_at'::name, definition => '')$$, '22023', 'ensure_trigger: definition = empty'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => null::regclass, trigger_name => 'created_at'::name, definition => 'before insert on public.sweep_t for each row execute function ballast.tg_audit_log__append_only()')$$, '22004', 'ensure_trigger: tbl = null'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => null::name, definition => 'before insert on public.sweep_t for each row execute function ballast.tg_audit_log__append_only()')$$, '22023', 'ensure_trigger: trigger_name = null'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => ''::name, definition => 'before insert on public.sweep_t for each row execute function ballast.tg_audit_log__append_only()')$$, '22023', 'ensure_trigger: trigger_name = empty'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => 'sweep'::name, definition => 'x''; drop table ballast.settings; --')$$, '22023', 'ensure_trigger: definition = injection (does not parse)'),
  ('ballast.ensure_trigger(regclass,name,text)', $$select ballast.ensure_trigger(tbl => 'public.sweep_t'::regclass, trigger_name => 'sweep'::name, definition => 'after insert on public.sweep_t for each statement execute function public.no_such_fn()')$$, '22023', 'ensure_trigger: definition = unknown function'),
  -- ensure_view
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => '')$$, '22023', 'ensure_view: definition = empty'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => null::text)$$, '22023', 'ensure_view: definition = null'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => 'select 1 as n', options => null::text[])$$, '22023', 'ensure_view: options = null'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => 'select 1 as n', options => '{null}'::text[])$$, '22023', 'ensure_view: options = {null}'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => E'a\nb', definition => 'select 1 as n')$$, '22023', 'ensure_view: view_name = control chars'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => repeat('x', 10000), definition => 'select 1 as n')$$, '22023', 'ensure_view: view_name = 10k chars'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => '', definition => 'select 1 as n')$$, '22023', 'ensure_view: view_name = empty'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => null::text, definition => 'select 1 as n')$$, '22023', 'ensure_view: view_name = null'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'x''; drop table ballast.settings; --', definition => 'select 1 as n')$$, '22023', 'ensure_view: view_name = injection'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => 'x''; drop table ballast.settings; --')$$, '22023', 'ensure_view: definition = injection (does not parse)'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v', definition => 'select no_such_column from public.sweep_t')$$, '22023', 'ensure_view: definition = unknown column (existing view)'),
  ('ballast.ensure_view(text,text,text[])', $$select ballast.ensure_view(view_name => 'public.sweep_v2', definition => E'select\n1 from public.no_such_table')$$, '22023', 'ensure_view: definition = unknown table'),
  ('ballast.ensure_policy(regclass,name,text,name[],text,text,boolean)', $$select ballast.ensure_policy(tbl => {dropped_oid}::oid::regclass, policy_name => 'sweep'::name, using_expr => 'true')$$, '42P01', 'ensure_policy: tbl = dropped oid'),
  -- exempt
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => E'a\nb', obj => 'public.sweep_t'::regclass, reason => 'sweep test exemption')$$, '22023', 'exempt: check_name = control chars'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => null::text, obj => 'public.sweep_t'::regclass, reason => 'sweep test exemption')$$, '22023', 'exempt: check_name = null'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'x''; drop table ballast.settings; --', obj => 'public.sweep_t'::regclass, reason => 'sweep test exemption')$$, '22023', 'exempt: check_name = injection'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => '', obj => 'public.sweep_t'::regclass, reason => 'sweep test exemption')$$, '22023', 'exempt: check_name = empty'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => repeat('x', 10000), obj => 'public.sweep_t'::regclass, reason => 'sweep test exemption')$$, '22023', 'exempt: check_name = 10k chars'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'rls', obj => null::regclass, reason => 'sweep test exemption')$$, '22004', 'exempt: obj = null'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'rls', obj => 'public.sweep_t'::regclass, reason => E'a\nb')$$, '22023', 'exempt: reason = control chars'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'rls', obj => 'public.sweep_t'::regclass, reason => null::text)$$, '22023', 'exempt: reason = null'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'rls', obj => 'public.sweep_t'::regclass, reason => '')$$, '22023', 'exempt: reason = empty'),
  -- exempt_role
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => 'sweep_test_role'::name, reason => E'a\nb')$$, '22023', 'exempt_role: reason = control chars'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => 'sweep_test_role'::name, reason => '')$$, '22023', 'exempt_role: reason = empty'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => 'sweep_test_role'::name, reason => null::text)$$, '22023', 'exempt_role: reason = null'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => ''::name, reason => 'sweep test exemption')$$, '42704', 'exempt_role: role_name = empty'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => null::name, reason => 'sweep test exemption')$$, '22004', 'exempt_role: role_name = null'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => 'x''; drop table ballast.settings; --'::name, reason => 'sweep test exemption')$$, '42704', 'exempt_role: role_name = injection'),
  ('ballast.exempt_role(name,text)', $$select ballast.exempt_role(role_name => 'no_such_column'::name, reason => 'sweep test exemption')$$, '42704', 'exempt_role: role_name = no such column'),
  ('ballast.exempt(text,regclass,text)', $$select ballast.exempt(check_name => 'rls', obj => {dropped_oid}::oid::regclass, reason => 'sweep test exemption')$$, '42P01', 'exempt: obj = dropped oid'),
  -- explain_access
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => {dropped_oid}::oid::regclass, command => 'select')$$, '42P01', 'explain_access: tbl = dropped oid'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => null::text)$$, '22023', 'explain_access: command = null'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => 'x''; drop table ballast.settings; --')$$, '22023', 'explain_access: command = injection'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => E'a\nb')$$, '22023', 'explain_access: command = control chars'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => repeat('x', 10000))$$, '22023', 'explain_access: command = 10k chars'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => '')$$, '22023', 'explain_access: command = empty'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => 'select', row_data => '"x"'::jsonb)$$, '22023', 'explain_access: row_data = "x"'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => 'public.sweep_t'::regclass, command => 'select', row_data => '[]'::jsonb)$$, '22023', 'explain_access: row_data = []'),
  ('ballast.explain_access(regclass,text,jsonb)', $$select ballast.explain_access(tbl => null::regclass, command => 'select')$$, '22004', 'explain_access: tbl = null'),
  -- fail_cache_invalidations
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_base_ms => 0)$$, '22023', 'fail_cache_invalidations: backoff_base_ms = 0'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_base_ms => -1)$$, '22023', 'fail_cache_invalidations: backoff_base_ms = -1'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_base_ms => 2147483647)$$, '22023', 'fail_cache_invalidations: backoff_base_ms = max int'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_base_ms => null::int)$$, '22023', 'fail_cache_invalidations: backoff_base_ms = null'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_max_ms => 0)$$, '22023', 'fail_cache_invalidations: backoff_max_ms = 0'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_max_ms => -1)$$, '22023', 'fail_cache_invalidations: backoff_max_ms = -1'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', backoff_max_ms => null::int)$$, '22023', 'fail_cache_invalidations: backoff_max_ms = null'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => null::int[], error => 'boom')$$, '22004', 'fail_cache_invalidations: claim_attempts = null'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{}'::int[], error => 'boom')$$, '22023', 'fail_cache_invalidations: claim_attempts = {}'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom')$$, '22023', 'fail_cache_invalidations: ids = {}'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => null::bigint[], claim_attempts => '{1}'::int[], error => 'boom')$$, '22004', 'fail_cache_invalidations: ids = null'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{null}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom')$$, '22004', 'fail_cache_invalidations: ids = {null}'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{null}'::int[], error => 'boom')$$, '22004', 'fail_cache_invalidations: claim_attempts = {null}'),
  ('ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)', $$select ballast.fail_cache_invalidations(ids => '{1}'::bigint[], claim_attempts => '{1}'::int[], error => 'boom', permanent => null::boolean)$$, '22004', 'fail_cache_invalidations: permanent = null'),
  -- idempotency_assert_holder
  ('ballast.idempotency_assert_holder(text)', $$select ballast.idempotency_assert_holder(holder => repeat('x', 10000))$$, '22023', 'idempotency_assert_holder: holder = 10k chars'),
  ('ballast.idempotency_assert_holder(text)', $$select ballast.idempotency_assert_holder(holder => null::text)$$, '22023', 'idempotency_assert_holder: holder = null'),
  ('ballast.idempotency_assert_holder(text)', $$select ballast.idempotency_assert_holder(holder => '')$$, '22023', 'idempotency_assert_holder: holder = empty'),
  ('ballast.idempotency_assert_holder(text)', $$select ballast.idempotency_assert_holder(holder => E'a\nb')$$, '22023', 'idempotency_assert_holder: holder = control chars'),
  -- idempotency_assert_key
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => 'sweep', key => repeat('x', 10000))$$, '22023', 'idempotency_assert_key: key = 10k chars'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => 'sweep', key => null::text)$$, '22023', 'idempotency_assert_key: key = null'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => 'sweep', key => '')$$, '22023', 'idempotency_assert_key: key = empty'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => 'sweep', key => E'a\nb')$$, '22023', 'idempotency_assert_key: key = control chars'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => null::text, key => 'sweep')$$, '22023', 'idempotency_assert_key: scope = null'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => '', key => 'sweep')$$, '22023', 'idempotency_assert_key: scope = empty'),
  ('ballast.idempotency_assert_key(text,text)', $$select ballast.idempotency_assert_key(scope => repeat('x', 10000), key => 'sweep')$$, '22023', 'idempotency_assert_key: scope = 10k chars'),
  -- idempotency_begin
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', holder => '')$$, '22023', 'idempotency_begin: holder = empty'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', holder => E'a\nb')$$, '22023', 'idempotency_begin: holder = control chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', holder => repeat('x', 10000))$$, '22023', 'idempotency_begin: holder = 10k chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => repeat('x', 10000), request_hash => 'sweep')$$, '22023', 'idempotency_begin: key = 10k chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => null::text, request_hash => 'sweep')$$, '22023', 'idempotency_begin: key = null'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => '', request_hash => 'sweep')$$, '22023', 'idempotency_begin: key = empty'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => E'a\nb', request_hash => 'sweep')$$, '22023', 'idempotency_begin: key = control chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', lease => '-1 day'::interval)$$, '22023', 'idempotency_begin: lease = -1 day'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', lease => null::interval)$$, '22023', 'idempotency_begin: lease = null'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', lease => '0'::interval)$$, '22023', 'idempotency_begin: lease = 0'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', lease => '1000 years'::interval)$$, '22023', 'idempotency_begin: lease = 1000 years'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', ttl => '1000 years'::interval)$$, '22023', 'idempotency_begin: ttl = 1000 years'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', ttl => '1000 years'::interval, lease => '1000 years'::interval)$$, '22023', 'idempotency_begin: ttl and lease = 1000 years'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => repeat('x', 10000))$$, '22023', 'idempotency_begin: request_hash = 10k chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => '')$$, '22023', 'idempotency_begin: request_hash = empty'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => null::text)$$, '22023', 'idempotency_begin: request_hash = null'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => null::text, key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_begin: scope = null'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => repeat('x', 10000), key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_begin: scope = 10k chars'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => '', key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_begin: scope = empty'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', ttl => null::interval)$$, '22023', 'idempotency_begin: ttl = null'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', ttl => '0'::interval)$$, '22023', 'idempotency_begin: ttl = 0'),
  ('ballast.idempotency_begin(text,text,text,interval,interval,text)', $$select ballast.idempotency_begin(scope => 'sweep', key => 'sweep', request_hash => 'sweep', ttl => '-1 day'::interval)$$, '22023', 'idempotency_begin: ttl = -1 day'),
  -- idempotency_claim
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => null::text, key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_claim: scope = null'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => '', key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_claim: scope = empty'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => repeat('x', 10000), key => 'sweep', request_hash => 'sweep')$$, '22023', 'idempotency_claim: scope = 10k chars'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => null::text, request_hash => 'sweep')$$, '22023', 'idempotency_claim: key = null'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => '', request_hash => 'sweep')$$, '22023', 'idempotency_claim: key = empty'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => repeat('x', 10000), request_hash => 'sweep')$$, '22023', 'idempotency_claim: key = 10k chars'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => E'a\nb', request_hash => 'sweep')$$, '22023', 'idempotency_claim: key = control chars'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => 'sweep', request_hash => null::text)$$, '22023', 'idempotency_claim: request_hash = null'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => 'sweep', request_hash => '')$$, '22023', 'idempotency_claim: request_hash = empty'),
  ('ballast.idempotency_claim(text,text,text)', $$select * from ballast.idempotency_claim(scope => 'sweep', key => 'sweep', request_hash => repeat('x', 10000))$$, '22023', 'idempotency_claim: request_hash = 10k chars'),
  -- idempotency_store
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => null::text, key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: scope = null'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => '', key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: scope = empty'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => repeat('x', 10000), key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: scope = 10k chars'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => null::text, request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: key = null'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => '', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: key = empty'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => repeat('x', 10000), request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: key = 10k chars'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => E'a\nb', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: key = control chars'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => null::text, status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: request_hash = null'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => '', status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: request_hash = empty'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => repeat('x', 10000), status_code => 200, response_body => 'sweep')$$, '22023', 'idempotency_store: request_hash = 10k chars'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => null::int, response_body => 'sweep')$$, '22023', 'idempotency_store: status_code = null'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => -1, response_body => 'sweep')$$, '22023', 'idempotency_store: status_code = -1'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 0, response_body => 'sweep')$$, '22023', 'idempotency_store: status_code = 0'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 2147483647, response_body => 'sweep')$$, '22023', 'idempotency_store: status_code = 2147483647'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep', ttl => null::interval)$$, '22023', 'idempotency_store: ttl = null'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep', ttl => '0'::interval)$$, '22023', 'idempotency_store: ttl = 0'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep', ttl => '-1 day'::interval)$$, '22023', 'idempotency_store: ttl = -1 day'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep-store', key => 'sweep-store', request_hash => 'sweep', status_code => 200, response_body => 'sweep', ttl => '1000 years'::interval)$$, '22023', 'idempotency_store: ttl = 1000 years'),
  ('ballast.idempotency_store(text,text,text,integer,text,interval)', $$select ballast.idempotency_store(scope => 'sweep', key => 'sweep', request_hash => 'sweep', status_code => 200, response_body => 'sweep')$$, '40001', 'idempotency_store: a key held through idempotency_begin'),
  -- idempotency_complete
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 200, response_body => 'sweep', holder => null::text)$$, '55000', 'idempotency_complete: holder = null'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'x''; drop table ballast.settings; --')$$, '55000', 'idempotency_complete: holder = injection'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 200, response_body => 'sweep', holder => E'a\nb')$$, '22023', 'idempotency_complete: holder = control chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 200, response_body => 'sweep', holder => repeat('x', 10000))$$, '22023', 'idempotency_complete: holder = 10k chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 200, response_body => 'sweep', holder => '')$$, '22023', 'idempotency_complete: holder = empty'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => E'a\nb', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: key = control chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'x''; drop table ballast.settings; --', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_complete: key = injection'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => null::text, status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: key = null'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => '', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: key = empty'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => repeat('x', 10000), status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: key = 10k chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => null::text, key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: scope = null'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => '', key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: scope = empty'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => repeat('x', 10000), key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: scope = 10k chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => E'a\nb', key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_complete: scope = control chars'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'x''; drop table ballast.settings; --', key => 'sweep', status_code => 200, response_body => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_complete: scope = injection'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 2147483647, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: status_code = max int'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => 0, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: status_code = 0'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => -1, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: status_code = -1'),
  ('ballast.idempotency_complete(text,text,integer,text,text)', $$select ballast.idempotency_complete(scope => 'sweep', key => 'sweep', status_code => null::int, response_body => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_complete: status_code = null'),
  -- idempotency_extend
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', holder => repeat('x', 10000))$$, '22023', 'idempotency_extend: holder = 10k chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', holder => 'x''; drop table ballast.settings; --')$$, '55000', 'idempotency_extend: holder = injection'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', holder => E'a\nb')$$, '22023', 'idempotency_extend: holder = control chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', holder => '')$$, '22023', 'idempotency_extend: holder = empty'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', holder => null::text)$$, '55000', 'idempotency_extend: holder = null'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => E'a\nb', holder => 'sweep')$$, '22023', 'idempotency_extend: key = control chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => repeat('x', 10000), holder => 'sweep')$$, '22023', 'idempotency_extend: key = 10k chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'x''; drop table ballast.settings; --', holder => 'sweep')$$, '55000', 'idempotency_extend: key = injection'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => '', holder => 'sweep')$$, '22023', 'idempotency_extend: key = empty'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => null::text, holder => 'sweep')$$, '22023', 'idempotency_extend: key = null'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', lease => null::interval, holder => 'sweep')$$, '22023', 'idempotency_extend: lease = null'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', lease => '-1 day'::interval, holder => 'sweep')$$, '22023', 'idempotency_extend: lease = -1 day'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', lease => '0'::interval, holder => 'sweep')$$, '22023', 'idempotency_extend: lease = 0'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'sweep', key => 'sweep', lease => '1000 years'::interval, holder => 'sweep')$$, '22023', 'idempotency_extend: lease = 1000 years'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => null::text, key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_extend: scope = null'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => 'x''; drop table ballast.settings; --', key => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_extend: scope = injection'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => E'a\nb', key => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_extend: scope = control chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => repeat('x', 10000), key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_extend: scope = 10k chars'),
  ('ballast.idempotency_extend(text,text,interval,text)', $$select ballast.idempotency_extend(scope => '', key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_extend: scope = empty'),
  -- idempotency_release
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'sweep', holder => repeat('x', 10000))$$, '22023', 'idempotency_release: holder = 10k chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'sweep', holder => null::text)$$, '55000', 'idempotency_release: holder = null'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'sweep', holder => '')$$, '22023', 'idempotency_release: holder = empty'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'sweep', holder => E'a\nb')$$, '22023', 'idempotency_release: holder = control chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'sweep', holder => 'x''; drop table ballast.settings; --')$$, '55000', 'idempotency_release: holder = injection'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => 'x''; drop table ballast.settings; --', holder => 'sweep')$$, '55000', 'idempotency_release: key = injection'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => null::text, holder => 'sweep')$$, '22023', 'idempotency_release: key = null'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => repeat('x', 10000), holder => 'sweep')$$, '22023', 'idempotency_release: key = 10k chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => E'a\nb', holder => 'sweep')$$, '22023', 'idempotency_release: key = control chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'sweep', key => '', holder => 'sweep')$$, '22023', 'idempotency_release: key = empty'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => E'a\nb', key => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_release: scope = control chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => 'x''; drop table ballast.settings; --', key => 'sweep', holder => 'sweep')$$, '55000', 'idempotency_release: scope = injection'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => repeat('x', 10000), key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_release: scope = 10k chars'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => '', key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_release: scope = empty'),
  ('ballast.idempotency_release(text,text,text)', $$select ballast.idempotency_release(scope => null::text, key => 'sweep', holder => 'sweep')$$, '22023', 'idempotency_release: scope = null'),
  -- invalidate_on_change
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => array['sweep:{id}'], collapse_above => 0)$$, '22023', 'invalidate_on_change: collapse_above = 0'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => array['sweep:{id}'], collapse_above => -1)$$, '22023', 'invalidate_on_change: collapse_above = -1'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => array['sweep:{id}'], collapse_above => null::int)$$, '22023', 'invalidate_on_change: collapse_above = null'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => null::text[])$$, '22023', 'invalidate_on_change: tags = null'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => '{null}'::text[])$$, '22004', 'invalidate_on_change: tags = {null}'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_t'::regclass, tags => '{}'::text[])$$, '22023', 'invalidate_on_change: tags = {}'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'public.sweep_v'::regclass, tags => array['sweep:{id}'])$$, '42809', 'invalidate_on_change: tbl = a view'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => 'pg_class'::regclass, tags => array['sweep:{id}'])$$, '42703', 'invalidate_on_change: tbl = catalog table pg_class'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => null::regclass, tags => array['sweep:{id}'])$$, '22004', 'invalidate_on_change: tbl = null'),
  ('ballast.invalidate_on_change(regclass,text[],integer)', $$select ballast.invalidate_on_change(tbl => {dropped_oid}::oid::regclass, tags => array['sweep:{id}'])$$, '42703', 'invalidate_on_change: tbl = dropped oid'),
  -- merge_cache_invalidation_inbox
  ('ballast.merge_cache_invalidation_inbox(integer)', $$select ballast.merge_cache_invalidation_inbox(max_rows => null::int)$$, '22023', 'merge_cache_invalidation_inbox: max_rows = null'),
  ('ballast.merge_cache_invalidation_inbox(integer)', $$select ballast.merge_cache_invalidation_inbox(max_rows => -1)$$, '22023', 'merge_cache_invalidation_inbox: max_rows = -1'),
  ('ballast.merge_cache_invalidation_inbox(integer)', $$select ballast.merge_cache_invalidation_inbox(max_rows => 0)$$, '22023', 'merge_cache_invalidation_inbox: max_rows = 0'),
  -- owner_only_policy
  ('ballast.owner_only_policy(regclass)', $$select ballast.owner_only_policy(tbl => null::regclass)$$, '22004', 'owner_only_policy: tbl = null'),
  ('ballast.owner_only_policy(regclass)', $$select ballast.owner_only_policy(tbl => {dropped_oid}::oid::regclass)$$, '42P01', 'owner_only_policy: tbl = dropped oid'),
  ('ballast.owner_only_policy(regclass)', $$select ballast.owner_only_policy(tbl => 'public.sweep_v'::regclass)$$, '42809', 'owner_only_policy: tbl = a view'),
  -- process_materialized_view_refreshes
  ('ballast.process_materialized_view_refreshes(interval)', $$call ballast.process_materialized_view_refreshes(max_runtime => '-1 day'::interval)$$, '22023', 'process_materialized_view_refreshes: max_runtime = -1 day'),
  ('ballast.process_materialized_view_refreshes(interval)', $$call ballast.process_materialized_view_refreshes(max_runtime => '0'::interval)$$, '22023', 'process_materialized_view_refreshes: max_runtime = 0'),
  ('ballast.process_materialized_view_refreshes(interval)', $$call ballast.process_materialized_view_refreshes(max_runtime => null::interval)$$, '22023', 'process_materialized_view_refreshes: max_runtime = null'),
  ('ballast.process_materialized_view_refreshes(interval)', $$call ballast.process_materialized_view_refreshes(max_runtime => '1000 years'::interval)$$, '22023', 'process_materialized_view_refreshes: max_runtime = 1000 years'),
  -- rate_limit_prune
  ('ballast.rate_limit_prune(integer)', $$select ballast.rate_limit_prune(batch_size => null::int)$$, '22023', 'rate_limit_prune: batch_size = null'),
  ('ballast.rate_limit_prune(integer)', $$select ballast.rate_limit_prune(batch_size => -1)$$, '22023', 'rate_limit_prune: batch_size = -1'),
  ('ballast.rate_limit_prune(integer)', $$select ballast.rate_limit_prune(batch_size => 0)$$, '22023', 'rate_limit_prune: batch_size = 0'),
  -- rate_limit_take
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => null::text, capacity => 10, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: bucket = null'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => '', capacity => 10, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: bucket = empty'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => repeat('x', 10000), capacity => 10, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: bucket = 10k chars'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => -1, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: capacity = -1'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => null::int, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: capacity = null'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 0, refill_per_second => 1::numeric)$$, '22023', 'rate_limit_take: capacity = 0'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => 1::numeric, cost => null::int)$$, '22023', 'rate_limit_take: cost = null'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => 1::numeric, cost => -1)$$, '22023', 'rate_limit_take: cost = -1'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => 1::numeric, cost => 0)$$, '22023', 'rate_limit_take: cost = 0'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => 1::numeric, cost => 2147483647)$$, '22023', 'rate_limit_take: cost = max int'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => -1::numeric)$$, '22023', 'rate_limit_take: refill_per_second = -1'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => 0::numeric)$$, '22023', 'rate_limit_take: refill_per_second = 0'),
  ('ballast.rate_limit_take(text,integer,numeric,integer)', $$select ballast.rate_limit_take(bucket => 'sweep', capacity => 10, refill_per_second => null::numeric)$$, '22023', 'rate_limit_take: refill_per_second = null'),
  -- record_performance_metrics
  ('ballast.record_performance_metrics(jsonb)', $$select ballast.record_performance_metrics(rows => null::jsonb)$$, '22023', 'record_performance_metrics: rows = null'),
  ('ballast.record_performance_metrics(jsonb)', $$select ballast.record_performance_metrics(rows => '"x"'::jsonb)$$, '22023', 'record_performance_metrics: rows = "x"'),
  ('ballast.record_performance_metrics(jsonb)', $$select ballast.record_performance_metrics(rows => '{}'::jsonb)$$, '22023', 'record_performance_metrics: rows = {}'),
  -- recent_matview_refreshes
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => null::timestamptz, until => now())$$, '22023', 'recent_matview_refreshes: since = null'),
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => now() - interval '1 minute', until => null::timestamptz)$$, '22023', 'recent_matview_refreshes: until = null'),
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => '-infinity'::timestamptz, until => now())$$, '22023', 'recent_matview_refreshes: since = -infinity'),
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => now() - interval '1 minute', until => 'infinity'::timestamptz)$$, '22023', 'recent_matview_refreshes: until = infinity'),
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => now(), until => now())$$, '22023', 'recent_matview_refreshes: an empty window'),
  ('ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)', $$select * from ballast.recent_matview_refreshes(since => now() - interval '1000 years', until => now())$$, '22023', 'recent_matview_refreshes: a window of 1000 years'),
  -- record_worker_heartbeat
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => null::text, hostname => 'h', pid => 1)$$, '22023', 'record_worker_heartbeat: worker_id = null'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => '', hostname => 'h', pid => 1)$$, '22023', 'record_worker_heartbeat: worker_id = empty'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => repeat('x', 10000), hostname => 'h', pid => 1)$$, '22023', 'record_worker_heartbeat: worker_id = 10k chars'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => E'a\nb', hostname => 'h', pid => 1)$$, '22023', 'record_worker_heartbeat: worker_id = control chars'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => null::text, pid => 1)$$, '22023', 'record_worker_heartbeat: hostname = null'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => '', pid => 1)$$, '22023', 'record_worker_heartbeat: hostname = empty'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => repeat('x', 10000), pid => 1)$$, '22023', 'record_worker_heartbeat: hostname = 10k chars'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => E'a\nb', pid => 1)$$, '22023', 'record_worker_heartbeat: hostname = control chars'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => 'h', pid => null::int)$$, '22023', 'record_worker_heartbeat: pid = null'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => 'h', pid => 0)$$, '22023', 'record_worker_heartbeat: pid = 0'),
  ('ballast.record_worker_heartbeat(text,text,integer)', $$select ballast.record_worker_heartbeat(worker_id => 'w', hostname => 'h', pid => -1)$$, '22023', 'record_worker_heartbeat: pid = -1'),
  -- refresh_registered_matview
  ('ballast.refresh_registered_matview(regclass,integer,timestamp with time zone,text,boolean,bigint)', $$select ballast.refresh_registered_matview(matview => {dropped_oid}::oid::regclass)$$, '42809', 'refresh_registered_matview: matview = dropped oid'),
  ('ballast.refresh_registered_matview(regclass,integer,timestamp with time zone,text,boolean,bigint)', $$select ballast.refresh_registered_matview(matview => 'public.sweep_v'::regclass)$$, '42809', 'refresh_registered_matview: matview = a view'),
  ('ballast.refresh_registered_matview(regclass,integer,timestamp with time zone,text,boolean,bigint)', $$select ballast.refresh_registered_matview(matview => 'pg_class'::regclass)$$, '42809', 'refresh_registered_matview: matview = catalog table pg_class'),
  ('ballast.refresh_registered_matview(regclass,integer,timestamp with time zone,text,boolean,bigint)', $$select ballast.refresh_registered_matview(matview => null::regclass)$$, '22004', 'refresh_registered_matview: matview = null'),
  -- register_matview
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], debounce => null::interval)$$, '22023', 'register_matview: debounce = null'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], debounce => '0'::interval)$$, '22023', 'register_matview: debounce = 0'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], debounce => '-1 day'::interval)$$, '22023', 'register_matview: debounce = -1 day'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], debounce => '1000 years'::interval)$$, '22023', 'register_matview: debounce = 1000 years'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => null::regclass[])$$, '22023', 'register_matview: depends_on = null'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{null}'::regclass[])$$, '22023', 'register_matview: depends_on = {null}'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{}'::regclass[])$$, '22023', 'register_matview: depends_on = {}'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], max_delay => '0'::interval)$$, '22023', 'register_matview: max_delay = 0'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], max_delay => null::interval)$$, '22023', 'register_matview: max_delay = null'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], max_delay => '-1 day'::interval)$$, '22023', 'register_matview: max_delay = -1 day'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_mv'::regclass, depends_on => '{public.sweep_t}'::regclass[], max_delay => '1000 years'::interval)$$, '22023', 'register_matview: max_delay = 1000 years'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'public.sweep_v'::regclass, depends_on => '{public.sweep_t}'::regclass[])$$, '42809', 'register_matview: view = a view'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => {dropped_oid}::oid::regclass, depends_on => '{public.sweep_t}'::regclass[])$$, '42809', 'register_matview: view = dropped oid'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => 'pg_class'::regclass, depends_on => '{public.sweep_t}'::regclass[])$$, '42809', 'register_matview: view = catalog table pg_class'),
  ('ballast.register_matview(regclass,regclass[],interval,interval)', $$select ballast.register_matview(view => null::regclass, depends_on => '{public.sweep_t}'::regclass[])$$, '22004', 'register_matview: view = null'),
  -- request_refresh
  ('ballast.request_refresh(regclass)', $$select ballast.request_refresh(view => null::regclass)$$, '22004', 'request_refresh: view = null'),
  ('ballast.request_refresh(regclass)', $$select ballast.request_refresh(view => 'pg_class'::regclass)$$, '42809', 'request_refresh: view = catalog table pg_class'),
  ('ballast.request_refresh(regclass)', $$select ballast.request_refresh(view => 'public.sweep_v'::regclass)$$, '42809', 'request_refresh: view = a view'),
  ('ballast.request_refresh(regclass)', $$select ballast.request_refresh(view => {dropped_oid}::oid::regclass)$$, '42809', 'request_refresh: view = dropped oid'),
  -- run_cleanup
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup(max_runtime => null::interval)$$, '22023', 'run_cleanup: max_runtime = null'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup(max_runtime => '-1 day'::interval)$$, '22023', 'run_cleanup: max_runtime = -1 day'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup(max_runtime => '1000 years'::interval)$$, '22023', 'run_cleanup: max_runtime = 1000 years'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup(max_runtime => '0'::interval)$$, '22023', 'run_cleanup: max_runtime = 0'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup("only" => 'pg_class'::regclass)$$, '22023', 'run_cleanup: only = catalog table pg_class'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup("only" => 'public.sweep_v'::regclass)$$, '22023', 'run_cleanup: only = a view'),
  ('ballast.run_cleanup(interval,regclass)', $$call ballast.run_cleanup("only" => {dropped_oid}::oid::regclass)$$, '22023', 'run_cleanup: only = dropped oid'),
  -- schedule_job
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => '* * * * *', command => null::text)$$, '22004', 'schedule_job: command = null'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => '* * * * *', command => '')$$, '22004', 'schedule_job: command = empty'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => E'a\nb', schedule => '* * * * *', command => 'select 1')$$, '22023', 'schedule_job: job_name = control chars'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => null::text, schedule => '* * * * *', command => 'select 1')$$, '22023', 'schedule_job: job_name = null'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => '', schedule => '* * * * *', command => 'select 1')$$, '22023', 'schedule_job: job_name = empty'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => repeat('x', 10000), schedule => '* * * * *', command => 'select 1')$$, '22023', 'schedule_job: job_name = 10k chars'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'x''; drop table ballast.settings; --', schedule => '* * * * *', command => 'select 1')$$, '22023', 'schedule_job: job_name = injection'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => 'x''; drop table ballast.settings; --', command => 'select 1')$$, '22023', 'schedule_job: schedule = injection'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => E'a\nb', command => 'select 1')$$, '22023', 'schedule_job: schedule = control chars'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => repeat('x', 10000), command => 'select 1')$$, '22023', 'schedule_job: schedule = 10k chars'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => '', command => 'select 1')$$, '22023', 'schedule_job: schedule = empty'),
  ('ballast.schedule_job(text,text,text)', $$select ballast.schedule_job(job_name => 'sweep', schedule => null::text, command => 'select 1')$$, '22004', 'schedule_job: schedule = null'),
  -- stop_invalidating
  ('ballast.stop_invalidating(regclass)', $$select ballast.stop_invalidating(tbl => null::regclass)$$, '22004', 'stop_invalidating: tbl = null'),
  ('ballast.stop_invalidating(regclass)', $$select ballast.stop_invalidating(tbl => {dropped_oid}::oid::regclass)$$, '42P01', 'stop_invalidating: tbl = dropped oid'),
  -- unregister_matview
  ('ballast.unregister_matview(regclass)', $$select ballast.unregister_matview(view => null::regclass)$$, '22004', 'unregister_matview: view = null'),
  ('ballast.unregister_matview(regclass)', $$select ballast.unregister_matview(view => 'pg_class'::regclass)$$, '22023', 'unregister_matview: view = catalog table pg_class'),
  ('ballast.unregister_matview(regclass)', $$select ballast.unregister_matview(view => 'public.sweep_v'::regclass)$$, '22023', 'unregister_matview: view = a view'),
  ('ballast.unregister_matview(regclass)', $$select ballast.unregister_matview(view => {dropped_oid}::oid::regclass)$$, '22023', 'unregister_matview: view = dropped oid'),
  -- unschedule_job
  ('ballast.unschedule_job(text)', $$select ballast.unschedule_job(job_name => null::text)$$, '22004', 'unschedule_job: job_name = null'),
  -- append_audit_seal (internal to seal_audit_log and the retention path; the table's checks refuse bad rows)
  ('ballast.append_audit_seal(text,bigint,bigint,bigint,bigint,bigint[],bytea[])', $$select ballast.append_audit_seal('x''; drop table ballast.settings; --', null, null, null, null, '{}', '{}')$$, '23514', 'append_audit_seal: kind = injection'),
  ('ballast.append_audit_seal(text,bigint,bigint,bigint,bigint,bigint[],bytea[])', $$select ballast.append_audit_seal(null, null, null, null, null, '{}', '{}')$$, '23502', 'append_audit_seal: kind = null'),
  ('ballast.append_audit_seal(text,bigint,bigint,bigint,bigint,bigint[],bytea[])', $$select ballast.append_audit_seal('prune', null, null, null, null, null, '{}')$$, '23502', 'append_audit_seal: ids = null'),
  ('ballast.append_audit_seal(text,bigint,bigint,bigint,bigint,bigint[],bytea[])', $$select ballast.append_audit_seal('prune', null, null, null, null, '{1}', '{}')$$, '23514', 'append_audit_seal: digests shorter than ids'),
  ('ballast.append_audit_seal(text,bigint,bigint,bigint,bigint,bigint[],bytea[])', $$select ballast.append_audit_seal('seal', null, 1, null, null, '{}', '{}')$$, '23514', 'append_audit_seal: a seal without from_txid'),
  -- audit_row_history
  ('ballast.audit_row_history(regclass,jsonb)', $$select * from ballast.audit_row_history(tbl => null::regclass, key => '{"id": 1}')$$, '22004', 'audit_row_history: tbl = null'),
  ('ballast.audit_row_history(regclass,jsonb)', $$select * from ballast.audit_row_history(tbl => 'public.sweep_t'::regclass, key => null::jsonb)$$, '22004', 'audit_row_history: key = null'),
  ('ballast.audit_row_history(regclass,jsonb)', $$select * from ballast.audit_row_history(tbl => 'public.sweep_t'::regclass, key => '{"id": 1}')$$, '22023', 'audit_row_history: tbl not audited'),
  ('ballast.audit_row_history(regclass,jsonb)', $$select * from ballast.audit_row_history(tbl => 'pg_class'::regclass, key => '{"oid": 1}')$$, '22023', 'audit_row_history: tbl = pg_class'),
  ('ballast.audit_row_history(regclass,jsonb)', $$select * from ballast.audit_row_history(tbl => 'public.sweep_v'::regclass, key => '{"id": 1}')$$, '22023', 'audit_row_history: tbl = a view'),
  -- audit_seals_between
  ('ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)', $$select * from ballast.audit_seals_between(since => null::timestamptz, until => now())$$, '22004', 'audit_seals_between: since = null'),
  ('ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)', $$select * from ballast.audit_seals_between(since => now(), until => null::timestamptz)$$, '22004', 'audit_seals_between: until = null'),
  ('ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)', $$select * from ballast.audit_seals_between(since => now(), until => now() - interval '1 day')$$, '22023', 'audit_seals_between: since after until'),
  ('ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)', $$select * from ballast.audit_seals_between(since => '-infinity', until => now())$$, '22023', 'audit_seals_between: since = -infinity'),
  ('ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)', $$select * from ballast.audit_seals_between(since => now(), until => 'infinity')$$, '22023', 'audit_seals_between: until = infinity'),
  -- verify_audit_log
  ('ballast.verify_audit_log(timestamp with time zone)', $$select * from ballast.verify_audit_log(since => 'infinity')$$, '22023', 'verify_audit_log: since = infinity'),
  ('ballast.verify_audit_log(timestamp with time zone)', $$select * from ballast.verify_audit_log(since => '-infinity')$$, '22023', 'verify_audit_log: since = -infinity'),
  ('ballast.verify_audit_log(timestamp with time zone)', $$select * from ballast.verify_audit_log(since => now() + interval '1 day')$$, '22023', 'verify_audit_log: since in the future');

-- Routines with parameters for which nothing in the vocabulary is bad input, and why.
create temp table sweep_no_bad_input (fn regprocedure primary key, why text not null);
insert into sweep_no_bad_input values
  -- verdicts: they report a problem as a value instead of raising
  ('ballast.cleanup_expression_problem(text)', 'returns the problem with the expression as text, null when fine'),
  ('ballast.cleanup_index(regclass,name)', 'returns the index serving the column, null when none'),
  ('ballast.cleanup_time_column_type(regclass,name)', 'returns the column''s type, null when there is no such column'),
  ('ballast.idempotency_holder_ok(text)', 'returns whether the holder is valid'),
  ('ballast.idempotency_key_ok(text,text)', 'returns whether scope and key are valid'),
  ('ballast.is_exempt(text,regclass)', 'returns whether an exemption exists'),
  ('ballast.parse_claims(text)', 'returns (claims, problem); garbage is a problem, not an error'),
  ('ballast.uuid_or_null(text)', 'null for anything that is not a uuid, by definition'),
  ('ballast.setting(text)', 'null for a name that is not a setting (documented)'),
  -- pure helpers: a key, a name or a number derived from the argument; null in, null out
  ('ballast.audit_record_id(text,text[],jsonb)', 'hash of its arguments'),
  ('ballast.audit_row_digest(ballast.audit_log)', 'md5 of the row it is given'),
  ('ballast.audit_seal_hash(bytea,text,timestamp with time zone,bigint,bigint,bigint[],bytea[])', 'sha256 of its arguments'),
  ('ballast.cleanup_job_command(ballast.cleanup_policies)', 'text of the CALL for a policy row'),
  ('ballast.cleanup_job_id(regclass)', 'the pg_cron job id of a policy, null when none'),
  ('ballast.cleanup_job_name(regclass)', 'the pg_cron job name of a table'),
  ('ballast.cleanup_lock_key(regclass)', 'advisory lock key of a table'),
  ('ballast.qualified_name(regclass)', 'schema-qualified name of a relation'),
  ('ballast.refresh_backoff(integer)', 'backoff for a failure count'),
  ('ballast.refresh_lock_key(regclass)', 'advisory lock key of a view'),
  ('ballast.refresh_request_granularity(interval)', 'granularity derived from a debounce'),
  ('ballast.refresh_trigger_name(regclass)', 'trigger name derived from a view'),
  ('ballast.relation_name(regclass)', 'name of a relation'),
  ('ballast.request_flag_deadline(regclass)', 'deadline of a request flag, null when none'),
  ('ballast.request_trigger_function(regclass)', 'function name derived from a request flag'),
  ('ballast.sql_text_key(text)', 'normalised key of SQL text'),
  -- no-ops for an object the kit does not manage
  ('ballast.claim_matview_refresh(regclass,timestamp with time zone)', 'claims nothing for an unregistered view'),
  ('ballast.cleanup_may_delete(regclass,timestamp with time zone)', 'false outside run_cleanup() (documented)'),
  ('ballast.cleanup_rows_behind(regclass)', 'nothing behind for a table without a policy'),
  ('ballast.cleanup_schedules_behind(regclass,timestamp with time zone)', 'nothing behind for a table without a policy'),
  ('ballast.matviews_due(timestamp with time zone)', 'lists due views at any time'),
  ('ballast.record_refresh_request(regclass)', 'marks only a registered view stale (documented in privileges.sql)'),
  ('ballast.requeue_cache_invalidation_dead_letters(bigint[])', 'requeues the ids that exist, 0 for none'),
  ('ballast.try_lock_matview_refresh(regclass)', 'an advisory lock on any oid'),
  ('ballast.unlock_matview_refresh(regclass)', 'releases an advisory lock on any oid'),
  ('ballast.wait_for_source_writers(regclass,interval)', 'waits for nobody when no source table is written'),
  -- raises by design
  ('ballast.idempotency_not_held(text,text,text,text)', 'builds the 55000 "not held" error of complete/release/extend: it always raises');

select plan((select count(*)::int from sweep_cases) + 2);

-- snapshot of every kit table before the calls
create function pg_temp.sweep_table_md5(tbl regclass) returns text language plpgsql as $f$
declare h text;
begin
  execute format('select md5(coalesce(string_agg(t::text, %L order by t::text), %L)) from %s t', ',', '', tbl) into h;
  return h;
end
$f$;
create temp table sweep_snapshot as
select c.oid::regclass as tbl, pg_temp.sweep_table_md5(c.oid::regclass) as before_md5
from pg_class c where c.relnamespace = 'ballast'::regnamespace and c.relkind = 'r';

-- {dropped_oid} in a call stands for the oid of a dropped table (a literal: CALL takes no subquery)
select throws_ok(replace(call, '{dropped_oid}', (select oid::text from sweep_dropped_oid)), sqlstate, null::text, description)
from sweep_cases order by id;

select is(array(select p.oid::regprocedure::text from pg_proc p
                where p.pronamespace = 'ballast'::regnamespace and obj_description(p.oid, 'pg_proc') is not null
                  and p.prorettype <> 'trigger'::regtype and p.pronargs > 0
                  and not exists (select from sweep_cases c where c.fn = p.oid)
                  and not exists (select from sweep_no_bad_input n where n.fn = p.oid)
                order by 1),
          '{}'::text[], 'every public routine of ballast has a row in the sweep (bad cases or a reason why none)');

select is(array(select s.tbl::text from sweep_snapshot s where s.before_md5 is distinct from pg_temp.sweep_table_md5(s.tbl) order by 1),
          '{}'::text[], 'no kit table changed during the sweep');

select diag(format('%s: %s calls', p.proname, count(c.id)) || coalesce(' (no bad input: ' || n.why || ')', ''))
from pg_proc p
left join sweep_cases c on c.fn = p.oid
left join sweep_no_bad_input n on n.fn = p.oid
where p.oid in (select fn from sweep_cases union select fn from sweep_no_bad_input)
group by p.oid, p.proname, n.why
order by p.proname, p.oid::regprocedure::text;

select * from finish();
rollback;
