-- Claims helpers and explain_access(): missing, empty or malformed claims are "no session" (null, never an
-- error, never a bypass); explain_access says which check denies and why.
begin;
\ir tests_schema.psql
select plan(49);

select tests.create_org('org A');
select tests.create_org('org B');
select tests.create_user('alice');   -- member of org A
select tests.create_user('ada');     -- admin of org A
select tests.add_member('org A', 'alice', 'member');
select tests.add_member('org A', 'ada', 'admin');

-- No session: not set, empty (what a finished transaction leaves behind), malformed in every way.
select is(ballast.current_claims(), null, 'no claims set: current_claims() is null');
select is(ballast.current_user_id(), null, 'no claims set: current_user_id() is null');
select is(ballast.current_org_id(), null, 'no claims set: current_org_id() is null');
select is(ballast.current_app_role(), null, 'no claims set: current_app_role() is null');
select is(ballast.current_request_id(), null, 'no request.id set: current_request_id() is null');

create temp table bad_claims (label text, raw text, problem text);
insert into bad_claims values
  ('empty string', '', '^no claims'),
  ('blank', '   ', '^no claims'),
  ('truncated JSON', format('{"sub": "%s", "org_id": "%s", "role": "admin"', tests.id('ada'), tests.id('org A')), '^malformed claims: .*not valid JSON'),
  ('a JSON array', format('["%s"]', tests.id('ada')), '^malformed claims: expected a JSON object, got array'),
  ('JSON null', 'null', '^malformed claims: expected a JSON object, got null'),
  ('no sub', format('{"org_id": "%s", "role": "admin"}', tests.id('org A')), '^malformed claims: sub'),
  ('sub not a uuid', format('{"sub": "ada", "org_id": "%s", "role": "admin"}', tests.id('org A')), '^malformed claims: sub'),
  ('sub a number', format('{"sub": 42, "org_id": "%s"}', tests.id('org A')), '^malformed claims: sub'),
  ('org_id not a uuid', format('{"sub": "%s", "org_id": "org A", "role": "admin"}', tests.id('ada')), '^malformed claims: org_id'),
  ('unknown role', format('{"sub": "%s", "org_id": "%s", "role": "superadmin"}', tests.id('ada'), tests.id('org A')), '^malformed claims: role'),
  ('exp a string', format('{"sub": "%s", "org_id": "%s", "exp": "tomorrow"}', tests.id('ada'), tests.id('org A')), '^malformed claims: exp'),
  ('expired', format('{"sub": "%s", "org_id": "%s", "role": "admin", "exp": %s}', tests.id('ada'), tests.id('org A'),
                     extract(epoch from now() - interval '1 minute')::bigint), '^expired claims');
grant select on bad_claims to public;

select is(
  (select string_agg(label, ', ') from bad_claims b where (ballast.parse_claims(b.raw)).claims is not null),
  null, 'every malformed claims text parses to no session');
select is(
  (select string_agg(label || ': ' || coalesce((ballast.parse_claims(b.raw)).problem, 'no problem'), '; ')
     from bad_claims b where coalesce((ballast.parse_claims(b.raw)).problem, '') !~ b.problem),
  null, 'each malformed claims text names its problem');

-- The same through the helpers, acting as ballast_admin (the role with the most grants): no error, all null.
create function pg_temp.helpers_under(raw text) returns text as $$
begin
  perform tests.authenticate_with_claims(raw, 'ballast_admin');
  return concat_ws('/', ballast.current_claims(), ballast.current_user_id(), ballast.current_org_id(), ballast.current_app_role());
end $$ language plpgsql;
select is((select string_agg(label || '=' || v, ', ') from bad_claims b, pg_temp.helpers_under(b.raw) v where v <> ''),
          null, 'acting as ballast_admin with each malformed claims text, every helper is null');
select tests.clear_authentication();

select lives_ok($$select tests.authenticate_with_claims('{"sub": ', 'ballast_admin'); select ballast.current_org_id()$$,
                'malformed claims never raise');
select is((select count(*)::int from app_public.funds), 0, 'malformed claims as ballast_admin: no fund visible');
select tests.clear_authentication();

-- A valid session.
select tests.authenticate_as('ada', 'org A');
select tests.set_request_id('req-access-1');
select is(current_user::text, 'ballast_admin', 'an admin token acts as ballast_admin');
select is(ballast.current_user_id(), tests.id('ada'), 'current_user_id() is the sub claim');
select is(ballast.current_org_id(), tests.id('org A'), 'current_org_id() is the org_id claim');
select is(ballast.current_app_role(), 'admin', 'current_app_role() is the role claim');
select is(ballast.current_claims() ->> 'sub', tests.id('ada')::text, 'current_claims() holds the claims');
select is(ballast.current_request_id(), 'req-access-1', 'current_request_id() is request.id');
select tests.clear_authentication();
select is(ballast.current_claims(), null, 'after clearing, no session');

-- A session without an org (a user-level token): the user is known, the org is not.
select tests.authenticate_with_claims(format('{"sub": "%s", "role": "member"}', tests.id('alice')), 'ballast_member');
select is(ballast.current_user_id(), tests.id('alice'), 'a token without org_id still names the user');
select is(ballast.current_org_id(), null, 'a token without org_id acts for no organisation');
select is((select count(*)::int from app_public.funds), 0, 'and sees no organisation''s funds');
select tests.clear_authentication();

-- Every visitor role may call the helpers and explain_access.
select ok(bool_and(has_function_privilege(r, f, 'execute')), 'visitor roles may call the claim helpers and explain_access')
  from unnest(array['ballast_anonymous', 'ballast_member', 'ballast_admin']) r,
       unnest(array['ballast.current_claims()', 'ballast.current_user_id()', 'ballast.current_org_id()',
                    'ballast.current_app_role()', 'ballast.current_request_id()',
                    'ballast.explain_access(regclass, text, jsonb)']) f;

-- explain_access: which check fails, for each kind of visitor.
create function pg_temp.explain(tbl regclass, cmd text, row_data jsonb) returns jsonb as $$
  select jsonb_object_agg(check_name, ok) from ballast.explain_access(tbl, cmd, row_data)
$$ language sql;
create function pg_temp.detail(tbl regclass, cmd text, row_data jsonb, check_name text) returns text as $$
  select e.detail from ballast.explain_access(tbl, cmd, row_data) e where e.check_name = detail.check_name
$$ language sql;

select tests.authenticate_as_anonymous();
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Fund I')) -> 'session',
          'false', 'anonymous: the session check fails');
select matches(pg_temp.detail('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A')), 'session'),
               '^no claims', 'anonymous: the detail says there is no token');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'))) -> 'privilege',
          'false', 'anonymous: no INSERT privilege');
select is(pg_temp.explain('app_public.funds', 'select', null) -> 'policy for role', 'false', 'anonymous: no policy for its role');
select tests.clear_authentication();

select tests.authenticate_with_claims('{"sub": "not a uuid"}', 'ballast_member');
select matches(pg_temp.detail('app_public.funds', 'select', null, 'session'), '^malformed claims: sub',
               'malformed claims: explain_access says what is malformed');
select tests.clear_authentication();

select tests.authenticate_as('alice', 'org A');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Fund I')),
          '{"session": true, "policies": false, "privilege": false, "org match": true, "column privilege": false, "policy for role": false}',
          'member of org A inserting a fund: the privilege and policy-for-role checks fail');
select matches(pg_temp.detail('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A')), 'privilege'),
               'role ballast_member has no INSERT on app_public.funds', 'the detail names role, command and table');
select is(pg_temp.explain('app_public.funds', 'select', jsonb_build_object('org_id', tests.id('org A'))) -> 'policies',
          'true', 'member of org A may read a fund of org A');
select tests.clear_authentication();

select tests.authenticate_as('ada', 'org A');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Fund I')),
          '{"session": true, "policies": true, "privilege": true, "org match": true, "column privilege": true, "policy for role": true, "policy funds_insert_admin": true}',
          'admin of org A inserting a fund of org A: every check passes');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org B'), 'name', 'Fund I')),
          '{"session": true, "policies": false, "privilege": true, "org match": false, "column privilege": true, "policy for role": true, "policy funds_insert_admin": false}',
          'admin of org A inserting a fund of org B: org match and the policy fail');
select matches(pg_temp.detail('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org B')), 'org match'),
               format('row org_id %s, session org_id %s', tests.id('org B'), tests.id('org A')), 'the detail shows both org ids');
select matches(pg_temp.detail('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org B')), 'policy funds_insert_admin'),
               '^permissive fails: .*current_org_id', 'the policy detail shows the failing expression');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'id', 7, 'nope', 1)) -> 'column privilege',
          'false', 'a column without privilege, or unknown, fails the column check');
select matches(pg_temp.detail('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'nope', 1), 'column privilege'),
               'has no column nope', 'an unknown column is named');
select matches(pg_temp.detail('app_public.funds', 'update', jsonb_build_object('id', 1, 'org_id', tests.id('org A')), 'column privilege'),
               'may not UPDATE column org_id$', 'columns the admin may not update are named (not the primary key: it names the row)');
select tests.clear_authentication();

-- A member whose token claims admin: the memberships table says member, so the admin policy fails.
select tests.authenticate_as('alice', 'org A', 'admin');
select is(current_user::text, 'ballast_admin', 'a forged admin claim gets the admin database role from the API');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Fund I')) -> 'policy funds_insert_admin',
          'false', 'forged admin claim: the admin policy fails (memberships says member)');
select is(pg_temp.explain('app_public.funds', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Fund I')) -> 'org match',
          'true', 'forged admin claim: the org matches, so only the membership is wrong');
select tests.clear_authentication();

-- explain_access as the API calls it, for the admin case: a set of (check_name, ok, detail) rows.
select tests.authenticate_as('ada', 'org A');
select ok((select count(*) from ballast.explain_access('app_public.memberships', 'delete', jsonb_build_object('org_id', tests.id('org A')))) >= 4,
          'explain_access returns one row per check');
select ok((select bool_and(ok) from ballast.explain_access('app_public.organizations', 'update', jsonb_build_object('id', tests.id('org A'), 'name', 'A2'))),
          'admin of org A may rename org A');
select ok(not (select bool_and(ok) from ballast.explain_access('app_public.organizations', 'update', jsonb_build_object('id', tests.id('org B'), 'name', 'B2'))),
          'admin of org A may not rename org B');
select tests.clear_authentication();

-- Bad input: a specific SQLSTATE, a message naming the bad value.
select throws_ok($$select * from ballast.explain_access('app_public.funds', 'upsert', null)$$, '22023',
                 'explain_access: command must be select, insert, update or delete, got ''upsert''', 'an unknown command is refused');
select throws_ok($$select * from ballast.explain_access(null, 'select', null)$$, '22004', null, 'a null table is refused');
select throws_ok($$select * from ballast.explain_access('app_public.funds', 'select', '[1]')$$, '22023',
                 'explain_access: row_data must be a JSON object of column values, got array', 'row_data must be an object');
select lives_ok($$select * from ballast.explain_access('app_public.funds', 'SELECT', null)$$, 'the command is case-insensitive');

-- verify__access: reports a table without policies and an uncommented SECURITY DEFINER function in app_public.
create table app_private.no_policy (id int primary key);
alter table app_private.no_policy enable row level security;
alter table app_private.no_policy force row level security;
select is((select ok from ballast.verify__access() where check_name = 'policies app_private.no_policy'), false,
          'verify__access: a table without policies is not ok');
create function app_public.definer_probe() returns int as $$ select 1 $$ language sql security definer;
select is((select ok from ballast.verify__access() where check_name = 'security definer app_public.definer_probe()'), false,
          'verify__access: an uncommented SECURITY DEFINER function in app_public is not ok');
comment on function app_public.definer_probe() is 'Returns 1; safe because it reads nothing.';
select is((select ok from ballast.verify__access() where check_name = 'security definer app_public.definer_probe()'), true,
          'verify__access: a comment saying why it is safe makes it ok');

select * from finish();
rollback;
