-- The admin page's reads: app_public.audit_log (admins of the session's organisation only, their rows
-- only, each filter, input validation) and app_public.operations_health (admins only;
-- platform panels for operators only, cached a few seconds), plus the
-- development seed (idempotent).
begin;
\ir app_tests_schema.psql
select plan(42);

select tests.create_org('org A'), tests.create_org('org B');
select tests.create_user(u) from unnest(array['member A', 'admin A', 'admin B']) u;
select tests.add_member('org A', 'member A', 'member'), tests.add_member('org A', 'admin A', 'admin'),
       tests.add_member('org B', 'admin B', 'admin');
create temp table marks as select coalesce(max(id), 0) as before_id from ballast.audit_log;
grant select on marks to public;

-- Changes by the admins, in two requests, in both organisations.
select tests.authenticate_as('admin A', 'org A');
select tests.set_request_id('req-a-1');
insert into app_public.funds (org_id, name, size) values (tests.id('org A'), 'Fund A1', 100), (tests.id('org A'), 'Fund A2', 200);
select tests.set_request_id('req-a-2');
update app_public.funds set size = 150 where name = 'Fund A1';
select tests.authenticate_as('admin B', 'org B');
select tests.set_request_id('req-b-1');
insert into app_public.funds (org_id, name, size) values (tests.id('org B'), 'Fund B1', 300);

-- The example's audit wiring (sql/app.sql): funds and memberships are audited, and its rule (the kit's
-- setting audit_admin_rule) makes "admin" mean an admin row in app_public.memberships.
select tests.clear_authentication();
select is((select array_agg(t order by t) from ballast.audited_tables_list() t where t like 'app\_%'),
          array['app_public.funds', 'app_public.memberships'], 'funds and memberships are audited');
select is((select count(*)::int from pg_trigger where tgrelid = 'app_public.funds'::regclass and tgname like '\_900\_audit\_%'), 4,
          'funds has its four audit triggers');
select tests.authenticate_as('member A', 'org A', 'admin');
select is((select count(*)::int from ballast.admin_audit_log where id > (select before_id from marks)), 0,
          'a member of A whose token claims admin reads no rows of ballast.admin_audit_log (memberships says member)');

-- An admin of org A: their organisation's rows only, newest first, with the actor's name.
select tests.authenticate_as('admin A', 'org A');
-- an UPDATE's row holds the changed columns only (size), before and after
select is((select array_agg(op || ' ' || coalesce(new_values ->> 'name', format('%s: %s -> %s', array_to_string(changed_columns, ','), old_values ->> 'size', new_values ->> 'size')) order by id desc)
             from app_public.audit_log() where id > (select before_id from marks)),
          array['UPDATE size: 100.00 -> 150.00', 'INSERT Fund A2', 'INSERT Fund A1'], 'admin of A reads org A''s changes, not org B''s');
select is((select array_agg(id order by ord) = array_agg(id order by id desc)
             from app_public.audit_log() with ordinality as t(id, occurred_at, table_name, op, record_id, old_values, new_values,
                  changed_columns, actor_id, actor_name, request_id, ord)
            where id > (select before_id from marks)), true, 'newest first');
select is((select distinct actor_name from app_public.audit_log() where id > (select before_id from marks)),
          'admin A', 'the actor''s name comes with each row');
select is((select count(*)::int from app_public.audit_log(request_id => 'req-a-2') where id > (select before_id from marks)), 1,
          'filter by request id');
select is((select count(*)::int from app_public.audit_log(request_id => 'req-b-1')), 0,
          'another organisation''s request id finds nothing');
select is((select count(*)::int from app_public.audit_log(table_name => 'app_public.memberships') where id > (select before_id from marks)), 0,
          'filter by table: no membership changes in this test');
select is((select count(*)::int from app_public.audit_log(table_name => 'app_public.funds') where id > (select before_id from marks)), 3,
          'filter by table: the three fund changes');
select is((select count(*)::int from app_public.audit_log(actor_id => tests.id('admin A')) where id > (select before_id from marks)), 3,
          'filter by actor');
select is((select count(*)::int from app_public.audit_log(actor_id => tests.id('member A'))), 0,
          'filter by an actor who changed nothing');
select is((select count(*)::int from app_public.audit_log(since => now() + interval '1 minute')), 0,
          'since is inclusive of later rows only: nothing after a minute from now');
select is((select count(*)::int from app_public.audit_log(until => now()) where id > (select before_id from marks)), 0,
          'until is exclusive: rows of this transaction (occurred_at = now()) are not before now()');
select is((select count(*)::int from app_public.audit_log(since => now(), until => now() + interval '1 second') where id > (select before_id from marks)), 3,
          'a time range holding this transaction');

-- Bad input: 22023 naming the value, and what would be right.
select throws_like($$select * from app_public.audit_log(table_name => 'app_public.nope')$$,
                   '%table_name ''app_public.nope'' is not an audited table; audited tables are: app_public.funds, app_public.memberships%',
                   'an unknown table is refused, listing the audited ones');
select throws_ok($$select * from app_public.audit_log(table_name => 'app_public.nope')$$, '22023', null, 'with 22023');
select throws_ok($$select * from app_public.audit_log(since => now(), until => now() - interval '1 hour')$$, '22023', null, 'since after until: 22023');
select throws_like($$select * from app_public.audit_log(since => now(), until => now() - interval '1 hour')$$,
                   '%since (%) is after until (%)%', 'the message names both ends');
select throws_ok($$select * from app_public.audit_log(request_id => '')$$, '22023', null, 'an empty request id: 22023');
select throws_ok(format('select * from app_public.audit_log(request_id => %L)', repeat('x', 201)), '22023', null, 'a request id over 200 characters: 22023');

-- Everyone else is denied with 42501 and a hint, not handed an empty list.
select tests.authenticate_as('member A', 'org A');
select is(tests.try_sql('select * from app_public.audit_log()'), 'denied', 'a member of A: 42501');
select throws_like('select * from app_public.audit_log()', '%only an administrator of the organisation may read its audit log%',
                   'the message says who may');
select tests.authenticate_as('member A', 'org A', 'admin');
select is(tests.try_sql('select * from app_public.audit_log()'), 'denied', 'a member whose token claims admin: 42501 (memberships says member)');
select tests.authenticate_as('admin A', 'org B');
select is(tests.try_sql('select * from app_public.audit_log()'), 'denied', 'admin of A acting in org B, where they are no member: 42501');
select tests.authenticate_as_anonymous();
select is(tests.try_sql('select * from app_public.audit_log()'), 'denied', 'anonymous: 42501 (no execute privilege)');

-- The function is inlined into the caller's query, so a page's LIMIT reaches the index scan instead of
-- the whole log being materialised first (as a PL/pgSQL RETURN QUERY would).
select tests.clear_authentication();
create function tests.plan_of(q text) returns text language plpgsql as
  $$ declare r record; t text := ''; begin for r in execute 'explain ' || q loop t := t || r."QUERY PLAN" || E'\n'; end loop; return t; end $$;
select tests.authenticate_as('admin A', 'org A');
select unalike(tests.plan_of('select * from app_public.audit_log() limit 25'), '%Function Scan%',
               'audit_log() is inlined: no Function Scan that would materialise the whole log');

-- Health: the tenant view for an organisation's admins (its audit wiring, no platform data); the
-- platform panels only for an operator (claim operator: true AND a row in app_private.operators).
select tests.clear_authentication();
select tests.authenticate_as('admin A', 'org A');
select is((select array(select jsonb_object_keys(app_public.operations_health()) order by 1)),
          array['audited_tables', 'checked_at', 'operator'], 'an org admin who is no operator gets the tenant view only');
select is(app_public.operations_health() -> 'operator', 'false'::jsonb, 'and is told they are no operator');
select tests.authenticate_with_claims((tests.claims_for('admin A', 'org A')::jsonb || '{"operator": true}')::text, 'ballast_admin');
select is(app_public.operations_health() -> 'cleanup', null, 'the operator claim alone (not in app_private.operators) gives no platform data');
select tests.clear_authentication();
insert into app_private.operators (user_id) values (tests.id('admin A'));
select tests.authenticate_as('admin A', 'org A');
select is(app_public.operations_health() -> 'cleanup', null, 'a listed operator without the claim gets no platform data');
select tests.clear_authentication();
delete from app_private.operations_health_cache;  -- rolled back: start with no snapshot
select tests.authenticate_with_claims((tests.claims_for('admin A', 'org A')::jsonb || '{"operator": true}')::text, 'ballast_admin');
select is((select array(select jsonb_object_keys(app_public.operations_health()) order by 1)),
          array['audited_tables', 'checked_at', 'cleanup', 'invalidation', 'matviews', 'operator', 'platform_checked_at'],
          'an operator (claim and row) gets every panel');
select ok((select jsonb_array_length(app_public.operations_health() -> 'cleanup') > 0), 'the cleanup panel lists the built-in policies');
select tests.clear_authentication();
select is((select refreshes from app_private.operations_health_cache), 1::bigint,
          'two calls within the cache window took the snapshot once');
update app_private.operations_health_cache set taken_at = taken_at - interval '1 hour';
select tests.authenticate_with_claims((tests.claims_for('admin A', 'org A')::jsonb || '{"operator": true}')::text, 'ballast_admin');
select ok((app_public.operations_health() ->> 'platform_checked_at')::timestamptz > now() - interval '1 minute',
          'a snapshot older than the window is taken again');
select tests.clear_authentication();
select is((select refreshes from app_private.operations_health_cache), 2::bigint, 'once');
select tests.authenticate_as('member A', 'org A');
select is(tests.try_sql('select app_public.operations_health()'), 'denied', 'a member: 42501');
select tests.authenticate_with_claims((tests.claims_for('member A', 'org A')::jsonb || '{"operator": true}')::text, 'ballast_member');
select is(tests.try_sql('select app_public.operations_health()'), 'denied', 'a member claiming operator: 42501 (the admin check comes first)');
select tests.authenticate_as('member A', 'org A');
select is(tests.try_sql('select * from app_private.operations_health_cache'), 'denied', 'visitors cannot read the cached snapshot');
select is(tests.try_sql('select * from app_private.operators'), 'denied', 'nor the operators');

-- The development seed: fixed users, idempotent.
select tests.clear_authentication();
select is((select count(*)::int from app_private.seed_example_data()), 3, 'the seed returns its three example logins');
select is((select count(*)::int from app_private.seed_example_data()), 3, 'and again, adding nothing');

select * from finish();
rollback;
