-- Audit log: each operation recorded with actor and request id, a bulk UPDATE of 10k rows recorded,
-- enable_audit's validation, append-only for every role including the owner (except the retention path),
-- and admin_audit_log showing an org admin their organisation's rows only. On the kit's own fixtures
-- (tests_schema.psql): tests.items and tests.memberships stand in for an application's tables.
begin;
\ir tests_schema.psql
select plan(80);

select tests.create_org('org A'), tests.create_org('org B');
select tests.create_user(u) from unnest(array['alice', 'ada', 'bob', 'bea']) u;
select tests.add_member('org A', 'alice', 'member'), tests.add_member('org A', 'ada', 'admin'),
       tests.add_member('org B', 'bob', 'member'), tests.add_member('org B', 'bea', 'admin');

-- An application audits its tables; here the fixtures' items and memberships.
select ballast.enable_audit('tests.items'), ballast.enable_audit('tests.memberships');
select is((select array_agg(table_name order by table_name) from ballast.audited_tables where table_name like 'tests.%'),
          array['tests.items', 'tests.memberships'], 'items and memberships are audited');
select is((select count(*)::int from pg_trigger where tgrelid = 'tests.items'::regclass and tgname like '\_900\_audit\_%'), 4,
          'items has its four audit triggers');

-- The kit shows an org admin (role claim admin) their organisation's rows only when the application's
-- rule (the setting audit_admin_rule, a function of its own) agrees; the rule here is the fixtures' own
-- membership check. Restrictive policies an installed application may have added are dropped for this
-- transaction: they would hide these fixtures' rows.
do $$
declare
  p name;
begin
  for p in select policyname from pg_policies where schemaname = 'ballast' and tablename = 'audit_log' and permissive = 'RESTRICTIVE' loop
    execute format('drop policy %I on ballast.audit_log', p);
  end loop;
end $$;
select ballast.configure('audit_admin_rule', '"tests.is_current_org_admin"');

-- Each operation, by an admin in a request: actor, role, org and request id recorded.
create temp table marks as select coalesce(max(id), 0) as before_id from ballast.audit_log;
grant select on marks to public;
select tests.authenticate_as('ada', 'org A');
select tests.set_request_id('req-insert');
insert into tests.items (org_id, name, size) values (tests.id('org A'), 'Item I', 1000);
select tests.set_request_id('req-update');
update tests.items set size = 2000, note = 'grown' where name = 'Item I';
select tests.set_request_id('req-delete');
delete from tests.items where name = 'Item I';
select tests.clear_authentication();

create temp view item_i as
  select * from ballast.audit_log where id > (select before_id from marks) and table_name = 'tests.items' order by id;
select is((select array_agg(op::text order by id) from item_i), array['INSERT', 'UPDATE', 'DELETE'], 'insert, update and delete are recorded in order');
select is((select array_agg(request_id order by id) from item_i), array['req-insert', 'req-update', 'req-delete'], 'each with its request id');
select is((select array_agg(distinct actor_id) from item_i), array[tests.id('ada')::text], 'each with the actor (claims sub, as text)');
select is((select array_agg(distinct actor_role) from item_i), array['ballast_admin'], 'each with the database role that acted');
select is((select array_agg(distinct org_id) from item_i), array[tests.id('org A')], 'each with the row''s organisation');
select is((select count(distinct record_id)::int from item_i), 1, 'one record_id for the row across its history');
select is((select record_id from item_i limit 1),
          ballast.audit_record_id('tests.items', '{id}', jsonb_build_object('id', (select (new_values ->> 'id')::bigint from item_i where op = 'INSERT'))),
          'record_id is computable from table and primary key: one index lookup finds a row''s history');
select is((select new_values ->> 'name' from item_i where op = 'INSERT'), 'Item I', 'INSERT: new_values holds the row');
select is((select old_values from item_i where op = 'INSERT'), null, 'INSERT: no old_values');
select is((select changed_columns from ballast.admin_audit_log where id = (select id from item_i where op = 'UPDATE')), array['note', 'size'],
          'UPDATE: admin_audit_log''s changed_columns lists what changed');
select is((select (old_values ->> 'size') || ' -> ' || (new_values ->> 'size') from item_i where op = 'UPDATE'), '1000.00 -> 2000.00',
          'UPDATE: old and new values');
select is((select array[old_values, new_values] from item_i where op = 'UPDATE'),
          array['{"note": null, "size": 1000.00}', '{"note": "grown", "size": 2000.00}']::jsonb[],
          'UPDATE: only the changed columns are stored, before and after (a diff, not two images)');
select is((select array_agg(format('%s %s -> %s', op, coalesce(old_row ->> 'size', '-'), coalesce(new_row ->> 'name', '-')) order by id) from ballast.audit_row_history('tests.items',
             (select jsonb_build_object('id', new_values -> 'id') from item_i where op = 'INSERT'))),
          array['INSERT - -> Item I', 'UPDATE 1000.00 -> Item I', 'DELETE 2000.00 -> -'],
          'audit_row_history rebuilds the full row before and after each change from the diffs');
select is((select old_values ->> 'note' from item_i where op = 'DELETE'), 'grown', 'DELETE: old_values holds the last state');
select is((select new_values from item_i where op = 'DELETE'), null, 'DELETE: no new_values');
select is((select count(distinct txid)::int from item_i), 1, 'txid groups the rows of one transaction');
select ok((select bool_and(occurred_at = now()) from item_i), 'occurred_at is the transaction time');

-- Memberships (composite primary key) by an admin: record_id from both key columns.
select tests.authenticate_as('ada', 'org A');
select tests.set_request_id('req-membership');
update tests.memberships set role = 'admin' where user_id = tests.id('alice');
select tests.clear_authentication();
select is((select record_id from ballast.audit_log where request_id = 'req-membership'),
          ballast.audit_record_id('tests.memberships', '{org_id,user_id}', jsonb_build_object('org_id', tests.id('org A'), 'user_id', tests.id('alice'))),
          'a composite primary key makes the record_id');
select is((select changed_columns from ballast.admin_audit_log where request_id = 'req-membership'), array['role'],
          'memberships: the role change is recorded');

-- Without a session (the owner, a worker, a migration): no actor, the database role, the row's org.
set local role ballast_owner;
insert into tests.items (org_id, name) values (tests.id('org B'), 'Owner item');
reset role;
select is((select actor_id from ballast.audit_log where id > (select before_id from marks) and new_values ->> 'name' = 'Owner item'),
          null, 'owner: actor_id is null');
select is((select actor_role from ballast.audit_log where id > (select before_id from marks) and new_values ->> 'name' = 'Owner item'),
          'ballast_owner', 'owner: actor_role is ballast_owner');
select is((select org_id from ballast.audit_log where id > (select before_id from marks) and new_values ->> 'name' = 'Owner item'),
          tests.id('org B'), 'owner: org_id comes from the row');

-- A table of our own: exclude_columns, TRUNCATE, a bulk UPDATE of 10k rows, and an org taken from the claims.
create table tests.audit_probe (id int primary key, v int not null default 0, secret text);
select ballast.enable_audit('tests.audit_probe', '{secret}');
select is((select org_column from ballast.audited_tables where table_name = 'tests.audit_probe'), null,
          'a table without org_id records the claims'' org');
insert into tests.audit_probe (id, secret) select g, 'hunter2' from generate_series(1, 10000) g;
select tests.authenticate_with_claims(tests.claims_for('ada', 'org A'), 'ballast_admin');
reset role;  -- keep the claims, act as the superuser (the probe table has no grants)
select tests.set_request_id('req-bulk');
update tests.audit_probe set v = v + 1;
select tests.clear_authentication();
select is((select count(*)::int from ballast.audit_log where request_id = 'req-bulk'), 10000, 'bulk UPDATE of 10k rows: 10k audit rows');
select is((select count(distinct record_id)::int from ballast.audit_log where request_id = 'req-bulk'), 10000, 'one per row, each its own record_id');
select ok((select bool_and(array(select jsonb_object_keys(new_values)) = '{v}' and (new_values ->> 'v')::int = (old_values ->> 'v')::int + 1)
             from ballast.audit_log where request_id = 'req-bulk'), 'each with its old and new value paired by primary key');
select ok((select bool_and(not (old_values ? 'secret') and not (new_values ? 'secret')) from ballast.audit_log
            where table_name = 'tests.audit_probe'), 'excluded columns are never recorded');
select is((select array_agg(distinct org_id) from ballast.audit_log where request_id = 'req-bulk'), array[tests.id('org A')],
          'without an org column the claims'' org_id is recorded');
select tests.set_request_id('req-key-change');
update tests.audit_probe set id = id + 100000 where id in (1, 2);  -- key changes: old and new image still paired
select tests.clear_authentication();
select is((select array_agg(format('%s->%s %s', old_values ->> 'id', new_values ->> 'id', array_to_string(changed_columns, ',')) order by old_values ->> 'id')
             from ballast.admin_audit_log where request_id = 'req-key-change'),
          array['1->100001 id', '2->100002 id'], 'a primary key change is one UPDATE row, old and new key paired');
select is((select count(*)::int from ballast.audit_log where request_id = 'req-key-change'
            and record_id = ballast.audit_record_id('tests.audit_probe', '{id}', new_values)), 2,
          'its record_id is the new key''s');
select tests.set_request_id('req-noop');
update tests.audit_probe set v = v where id between 3 and 100;     -- changes nothing
update tests.audit_probe set secret = 'other' where id = 3;        -- changes an excluded column only
select tests.clear_authentication();
select is((select count(*)::int from ballast.audit_log where request_id = 'req-noop'), 0,
          'an UPDATE that changes nothing (or only excluded columns) writes no audit row');
-- A bulk UPDATE (1,000 rows or more) computes the diff on typed columns; a smaller one on jsonb. Both write
-- the same rows: twin tables, one updated in a single 1,000-row statement, the other in two of 500.
create table tests.twin_a (id int primary key, n numeric, t text, ts timestamptz, j jsonb, a int[], secret text);
insert into tests.twin_a select g, g / 3.0, 't' || g, '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g), array[g, g], 's'
  from generate_series(1, 1000) g;
create table tests.twin_b as select * from tests.twin_a;
alter table tests.twin_b add primary key (id);
select ballast.enable_audit('tests.twin_a', '{secret}'), ballast.enable_audit('tests.twin_b', '{secret}');
update tests.twin_a set n = case when id % 2 = 0 then n + 1 else n end, t = case when id % 3 = 0 then null else t end,
                        j = case when id % 5 = 0 then j || '{"x": 1}' else j end, a = case when id % 7 = 0 then a || 1 else a end,
                        ts = case when id % 11 = 0 then ts + interval '1 day' else ts end, secret = 'changed';
update tests.twin_b set n = case when id % 2 = 0 then n + 1 else n end, t = case when id % 3 = 0 then null else t end,
                        j = case when id % 5 = 0 then j || '{"x": 1}' else j end, a = case when id % 7 = 0 then a || 1 else a end,
                        ts = case when id % 11 = 0 then ts + interval '1 day' else ts end, secret = 'changed' where id <= 500;
update tests.twin_b set n = case when id % 2 = 0 then n + 1 else n end, t = case when id % 3 = 0 then null else t end,
                        j = case when id % 5 = 0 then j || '{"x": 1}' else j end, a = case when id % 7 = 0 then a || 1 else a end,
                        ts = case when id % 11 = 0 then ts + interval '1 day' else ts end, secret = 'changed' where id > 500;
select is((select count(*)::int from ballast.audit_log where table_name = 'tests.twin_a' and op = 'UPDATE'),
          (select count(*)::int from generate_series(1, 1000) g where g % 2 = 0 or g % 3 = 0 or g % 5 = 0 or g % 7 = 0 or g % 11 = 0),
          'bulk UPDATE: a row for each row that changed, none for the rows where only the excluded column changed');
select set_eq($$select right(replace(record_id::text, '-', ''), 16), old_values, new_values, org_id from ballast.audit_log where table_name = 'tests.twin_a' and op = 'UPDATE'$$,
              $$select right(replace(record_id::text, '-', ''), 16), old_values, new_values, org_id from ballast.audit_log where table_name = 'tests.twin_b' and op = 'UPDATE'$$,
              'the typed bulk path and the jsonb path write the same diffs, keys and orgs');
create table tests.twin_json (id int primary key, doc json, v int);
insert into tests.twin_json select g, json_build_object('g', g), 0 from generate_series(1, 1000) g;
select ballast.enable_audit('tests.twin_json');
update tests.twin_json set v = 1;
select is((select count(*)::int from ballast.audit_log where table_name = 'tests.twin_json' and op = 'UPDATE' and new_values = '{"v": 1}'), 1000,
          'a column type without equality (json): the bulk UPDATE falls back to the jsonb path');
-- The audit trigger runs as the kit's owner, who may have no USAGE on the audited table's schema: the bulk
-- path names no type of that schema.
create schema tests_no_usage;
revoke all on schema tests_no_usage from public;
create table tests_no_usage.things (id int primary key, v int not null default 0);
insert into tests_no_usage.things (id) select g from generate_series(1, 1000) g;
select ballast.enable_audit('tests_no_usage.things');
select lives_ok('update tests_no_usage.things set v = v + 1', 'a bulk UPDATE in a schema the owner cannot use is audited');
select is((select count(*)::int from ballast.audit_log where table_name = 'tests_no_usage.things' and op = 'UPDATE'), 1000, 'a row each');
-- A subject as identity providers issue it ('auth0|123'), and an org claim of another name (the setting
-- org_claim): the actor is recorded as written, the org read from the configured claim.
select ballast.configure('org_claim', '"https://example.com/org_id"');
select tests.authenticate_with_claims(format('{"sub": "auth0|123", "https://example.com/org_id": "%s", "role": "member"}', tests.id('org B')), 'ballast_admin');
reset role;  -- keep the claims, act as the superuser (the probe table has no grants)
select tests.set_request_id('req-auth0');
update tests.audit_probe set v = v + 1 where id = 3;
select tests.clear_authentication();
select is((select actor_id from ballast.audit_log where request_id = 'req-auth0'), 'auth0|123',
          'a subject that is not a uuid is recorded as the identity provider wrote it');
select is((select org_id from ballast.audit_log where request_id = 'req-auth0'), tests.id('org B'),
          'the org comes from the claim the setting org_claim names');
select ballast.configure('org_claim', null);
truncate tests.audit_probe;
select is((select count(*)::int from ballast.audit_log where table_name = 'tests.audit_probe' and op = 'TRUNCATE' and record_id is null), 1,
          'TRUNCATE is recorded once, without a record_id');
select is(ballast.disable_audit('tests.audit_probe'), true, 'disable_audit reports it was audited');
select is(ballast.disable_audit('tests.audit_probe'), false, 'and is idempotent');
insert into tests.audit_probe (id) values (1);
select is((select count(*)::int from ballast.audit_log where table_name = 'tests.audit_probe' and op = 'INSERT' and new_values ->> 'id' = '1'),
          1, 'after disable_audit nothing is recorded (only the first insert of id 1 is)');
select lives_ok($$select ballast.enable_audit('tests.audit_probe'); select ballast.enable_audit('tests.audit_probe')$$,
                'enable_audit is idempotent');
select is((select count(*)::int from pg_trigger where tgrelid = 'tests.audit_probe'::regclass and tgname like '\_900\_audit\_%'), 4,
          'still four audit triggers');

-- enable_audit's validation.
create table tests.no_pk (v int);
select throws_ok($$select ballast.enable_audit('tests.no_pk')$$, '55000',
                 'enable_audit: tests.no_pk has no primary key; the audit log identifies each row by it', 'a table without a primary key is refused');
select throws_ok($$select ballast.enable_audit('tests.audit_probe', '{secret,nope}')$$, '42703',
                 'enable_audit: tests.audit_probe has no column nope to exclude', 'an unknown excluded column is refused');
select throws_ok($$select ballast.enable_audit('tests.audit_probe', '{id}', 'v')$$, '42703', null, 'an org column that is not a uuid is refused');
select throws_ok($$select ballast.enable_audit('ballast.audit_log')$$, '22023', null, 'the audit log cannot audit itself');
select throws_ok($$select ballast.enable_audit('ballast.admin_audit_log')$$, '42809', null, 'a view is refused');
select throws_ok($$select ballast.enable_audit(null)$$, '22004', null, 'null is refused');
select is((select count(*)::int from pg_trigger where tgrelid = 'tests.audit_probe'::regclass and tgname like '\_900\_audit\_%'), 4,
          'a refused enable_audit leaves the triggers as they were');
select ok((select count(*) from ballast.verify__audit()) > 0, 'verify__audit runs');  -- one test, however many tables are audited
drop trigger _900_audit_update on tests.audit_probe;
select is((select ok from ballast.verify__audit() where check_name = 'audit triggers tests.audit_probe'), false,
          'verify__audit reports a missing audit trigger');

-- Append-only: UPDATE, DELETE, TRUNCATE fail for the owner and the superuser.
set local role ballast_owner;
select throws_ok($$update ballast.audit_log set actor_id = null$$, '42501', null, 'the owner cannot UPDATE the audit log');
select throws_ok($$delete from ballast.audit_log$$, '42501', null, 'the owner cannot DELETE from the audit log');
select throws_ok($$truncate ballast.audit_log$$, '42501', null, 'the owner cannot TRUNCATE the audit log');
reset role;
select throws_ok($$update ballast.audit_log set request_id = 'x' where false$$, '42501', null, 'even an UPDATE of no row fails, for the superuser too');
select throws_ok($$truncate ballast.audit_log$$, '42501', null, 'the superuser cannot TRUNCATE the audit log');

-- The retention path: only with ballast.cleanup_table set, a policy, and only rows older than its retain.
delete from ballast.cleanup_policies where tbl = 'ballast.audit_log'::regclass;
select throws_ok($$select set_config('ballast.cleanup_table', 'ballast.audit_log', true); delete from ballast.audit_log where occurred_at < now() - interval '400 days'$$,
                 '42501', 'ballast.audit_log: no retention policy for ballast.audit_log in ballast.cleanup_policies, so no row may be deleted',
                 'the cleanup path without a retention policy deletes nothing');
select set_config('ballast.cleanup_table', '', true);
select ballast.add_cleanup_policy('ballast.audit_log', 'occurred_at', '30 days');
-- Only the audit trigger writes rows: a forged INSERT fails for the owner and the superuser.
set local role ballast_owner;
select throws_ok($$insert into ballast.audit_log (table_name, op, actor_role, txid) values ('tests.items', 'DELETE', 'ballast_owner', txid_current())$$,
                 '42501', 'ballast.audit_log: rows are written only by the audit trigger (ballast.tg__audit), not by INSERT, for any role',
                 'the owner cannot INSERT a forged audit row');
reset role;
select throws_ok($$insert into ballast.audit_log (table_name, op, actor_role, txid) values ('tests.items', 'DELETE', 'postgres', txid_current())$$,
                 '42501', null, 'the superuser cannot INSERT a forged audit row either');
select ok((select ok from ballast.verify__audit() where check_name = 'audit log append-only'), 'verify counts the INSERT guard among the append-only triggers');
-- An old row for the retention tests: only a superuser skipping triggers can write one.
set local session_replication_role = replica;
insert into ballast.audit_log (occurred_at, table_name, op, actor_role, txid, request_id)
values (now() - interval '40 days', 'tests.items', 'DELETE', 'ballast_owner', txid_current(), 'req-old');
set local session_replication_role = origin;
set local role ballast_owner;
select throws_ok($$delete from ballast.audit_log where request_id = 'req-old'$$, '42501', null, 'without ballast.cleanup_table even old rows stay');
select set_config('ballast.cleanup_table', 'ballast.audit_log', true);
select throws_ok($$delete from ballast.audit_log where request_id in ('req-old', 'req-insert')$$, '42501', null,
                 'the cleanup path refuses a batch with any row inside the retention');
select throws_ok($$update ballast.audit_log set request_id = 'x' where request_id = 'req-old'$$, '42501', null,
                 'the cleanup path never allows UPDATE');
select lives_ok($$delete from ballast.audit_log where request_id = 'req-old'$$, 'the cleanup path deletes rows older than the retention');
select is((select count(*)::int from ballast.audit_log where request_id in ('req-old', 'req-insert')), 1, 'only the old row is gone');
select set_config('ballast.cleanup_table', '', true);
reset role;

-- admin_audit_log: an org admin sees their organisation's rows; members, other orgs and forged admins nothing.
create function pg_temp.audit_rows_seen_by(usr text, org text, app_role text default null) returns text as $$
declare
  r text;
begin
  perform tests.authenticate_as(usr, org, app_role);
  select coalesce(string_agg(distinct coalesce(i.identifier, 'another org ' || a.org_id), ','), 'nothing') into r
    from ballast.admin_audit_log a left join tests.identities i on i.id = a.org_id;
  perform tests.clear_authentication();
  return r;
end $$ language plpgsql;
select is(pg_temp.audit_rows_seen_by('ada', 'org A'), 'org A', 'admin of org A sees org A''s audit rows only');
select is(pg_temp.audit_rows_seen_by('bea', 'org B'), 'org B', 'admin of org B sees org B''s audit rows only');
select is(pg_temp.audit_rows_seen_by('bob', 'org B'), 'nothing', 'a member sees no audit rows');
select is(pg_temp.audit_rows_seen_by('bob', 'org B', 'admin'), 'nothing', 'a member with a forged admin claim sees no audit rows');
select tests.authenticate_as_anonymous();
select throws_ok($$select * from ballast.admin_audit_log$$, '42501', null, 'anonymous may not read the audit log');
select tests.clear_authentication();

-- Without the application's rule the role claim alone proves nothing: no visitor reads the log.
select ballast.configure('audit_admin_rule', null);
select is(pg_temp.audit_rows_seen_by('bob', 'org B', 'admin'), 'nothing',
          'without an audit_admin_rule a forged admin claim reads no audit rows (the kit denies by default)');
select is(pg_temp.audit_rows_seen_by('ada', 'org A'), 'nothing',
          'without an audit_admin_rule not even a real admin reads the log: the kit cannot know who is one');
select throws_ok($$select ballast.configure('audit_admin_rule', '"tests.no_such_rule"')$$, '42883',
                 'audit_admin_rule: no function tests.no_such_rule() without arguments', 'a rule naming a missing function is refused');
select throws_ok($$select ballast.configure('audit_admin_rule', '"tests.current_member_role"')$$, '42804',
                 'audit_admin_rule: tests.current_member_role() must be a function returning one boolean, it returns text',
                 'a rule that does not return boolean is refused');
select throws_ok($$select ballast.configure('audit_admin_rule', '["tests.is_current_org_admin"]')$$, '22023', null,
                 'a rule that is not a JSON string is refused');
select ballast.configure('audit_admin_rule', '"tests.is_current_org_admin"');
select is(pg_temp.audit_rows_seen_by('ada', 'org A'), 'org A', 'configuring the rule again lets the real admin read');

select * from finish();
rollback;
