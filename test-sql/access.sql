-- Claims helpers and explain_access(): missing, empty or malformed claims are "no session" (null, never an
-- error, never a bypass); subjects as identity providers issue them ('auth0|123'); org and role claims of
-- configurable names (settings org_claim, role_claim); roles of yours granted the kit's visitor roles
-- (grant ballast_member to authenticated) pass the policies, and verify checks them (setting visitor_roles);
-- explain_access says which check denies and why. On the kit's own fixtures (tests_schema.psql).
begin;
\ir tests_schema.psql
select plan(99);

select tests.create_org('org A');
select tests.create_org('org B');
select tests.create_user('alice');   -- member of org A
select tests.create_user('ada');     -- admin of org A
select tests.add_member('org A', 'alice', 'member');
select tests.add_member('org A', 'ada', 'admin');
insert into tests.items (org_id, name) values (tests.id('org A'), 'Item A'), (tests.id('org B'), 'Item B');

-- No session: not set, empty (what a finished transaction leaves behind), malformed in every way.
select is(ballast.current_claims(), null, 'no claims set: current_claims() is null');
select is(ballast.current_subject(), null, 'no claims set: current_subject() is null');
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
  ('no sub', format('{"org_id": "%s", "role": "admin"}', tests.id('org A')), '^malformed claims: sub must be the subject''s id'),
  ('sub empty', format('{"sub": "", "org_id": "%s", "role": "admin"}', tests.id('org A')), '^malformed claims: sub'),
  ('sub too long', format('{"sub": "%s", "org_id": "%s"}', repeat('x', 129), tests.id('org A')), '^malformed claims: sub .*1 to 128 characters'),
  ('sub a number', format('{"sub": 42, "org_id": "%s"}', tests.id('org A')), '^malformed claims: sub'),
  ('org_id not a uuid', format('{"sub": "%s", "org_id": "org A", "role": "admin"}', tests.id('ada')), '^malformed claims: org_id must be an organisation uuid'),
  ('org_id a number', format('{"sub": "%s", "org_id": 7}', tests.id('ada')), '^malformed claims: org_id'),
  ('unknown role', format('{"sub": "%s", "org_id": "%s", "role": "superadmin"}', tests.id('ada'), tests.id('org A')), '^malformed claims: role must be member or admin'),
  ('role not a string', format('{"sub": "%s", "org_id": "%s", "role": ["admin"]}', tests.id('ada'), tests.id('org A')), '^malformed claims: role'),
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
  return concat_ws('/', ballast.current_claims(), ballast.current_subject(), ballast.current_user_id(),
                   ballast.current_org_id(), ballast.current_app_role());
end $$ language plpgsql;
select is((select string_agg(label || '=' || v, ', ') from bad_claims b, pg_temp.helpers_under(b.raw) v where v <> ''),
          null, 'acting as ballast_admin with each malformed claims text, every helper is null');
select tests.clear_authentication();

select lives_ok($$select tests.authenticate_with_claims('{"sub": ', 'ballast_admin'); select ballast.current_org_id()$$,
                'malformed claims never raise');
select is((select count(*)::int from tests.items), 0, 'malformed claims as ballast_admin: no item visible');
select tests.clear_authentication();

-- A valid session.
select tests.authenticate_as('ada', 'org A');
select tests.set_request_id('req-access-1');
select is(current_user::text, 'ballast_admin', 'an admin token acts as ballast_admin');
select is(ballast.current_subject(), tests.id('ada')::text, 'current_subject() is the sub claim, as text');
select is(ballast.current_user_id(), tests.id('ada'), 'current_user_id() is the sub claim, as a uuid');
select is(ballast.current_org_id(), tests.id('org A'), 'current_org_id() is the org_id claim');
select is(ballast.current_app_role(), 'admin', 'current_app_role() is the role claim');
select is(ballast.current_claims() ->> 'sub', tests.id('ada')::text, 'current_claims() holds the claims');
select is(ballast.current_request_id(), 'req-access-1', 'current_request_id() is request.id');
select is((select array_agg(name) from tests.items), array['Item A'], 'an admin of org A sees org A''s item');
select tests.clear_authentication();
select is(ballast.current_claims(), null, 'after clearing, no session');

-- A subject as identity providers issue it: a session, with no uuid user id (and no error).
select tests.authenticate_with_claims(format('{"sub": "auth0|123", "org_id": "%s", "role": "member"}', tests.id('org A')), 'ballast_member');
select is(ballast.current_subject(), 'auth0|123', 'sub auth0|123: current_subject() is auth0|123');
select is(ballast.current_user_id(), null, 'sub auth0|123: current_user_id() is null, not an error');
select is(ballast.current_org_id(), tests.id('org A'), 'sub auth0|123: the org is read');
select is(ballast.current_app_role(), 'member', 'sub auth0|123: the role is read');
select is((select count(*)::int from tests.users where id = (select ballast.current_user_id())), 0,
          'a policy comparing a uuid key with current_user_id() matches nothing for it');
select tests.clear_authentication();
select is((ballast.parse_claims(format('{"sub": "%s"}', repeat('x', 128)))).problem, null, 'a subject of 128 characters is a session');

-- uuid_or_null: a text written as a uuid is one; anything else is null, never an error.
select is(ballast.uuid_or_null('32b6d5c7-1b47-42e8-856f-d1f583126c25'), '32b6d5c7-1b47-42e8-856f-d1f583126c25'::uuid, 'uuid_or_null: a uuid');
select is(ballast.uuid_or_null('32B6D5C71B4742E8856FD1F583126C25'), '32b6d5c7-1b47-42e8-856f-d1f583126c25'::uuid, 'uuid_or_null: 32 hex digits, upper case');
select is((select count(*)::int from unnest(array['auth0|123', '', 'user_2abc', '32b6d5c7-1b47-42e8-856f-d1f583126c2',
            '{32b6d5c7-1b47-42e8-856f-d1f583126c25}', E'32b6d5c7-1b47-42e8-856f-d1f583126c25\n', 'g2b6d5c7-1b47-42e8-856f-d1f583126c25', null]) t
           where ballast.uuid_or_null(t) is not null), 0, 'uuid_or_null: anything else is null');

-- A session without an org (a user-level token): the user is known, the org is not.
select tests.authenticate_with_claims(format('{"sub": "%s", "role": "member"}', tests.id('alice')), 'ballast_member');
select is(ballast.current_user_id(), tests.id('alice'), 'a token without org_id still names the user');
select is(ballast.current_org_id(), null, 'a token without org_id acts for no organisation');
select is((select count(*)::int from tests.items), 0, 'and sees no organisation''s items');
select tests.clear_authentication();

-- Every visitor role may call the helpers and explain_access.
select ok(bool_and(has_function_privilege(r, f, 'execute')), 'visitor roles may call the claim helpers and explain_access')
  from unnest(array['ballast_anonymous', 'ballast_member', 'ballast_admin']) r,
       unnest(array['ballast.current_claims()', 'ballast.current_subject()', 'ballast.current_user_id()', 'ballast.current_org_id()',
                    'ballast.current_app_role()', 'ballast.current_request_id()', 'ballast.org_claim()', 'ballast.role_claim()',
                    'ballast.uuid_or_null(text)', 'ballast.explain_access(regclass, text, jsonb)']) f;

-- Claim names: the settings org_claim and role_claim (e.g. Auth0's namespaced claims).
select is(ballast.org_claim(), 'org_id', 'the org claim is org_id by default');
select is(ballast.role_claim(), 'role', 'the role claim is role by default');
select is(ballast.configure('org_claim', '"https://example.com/org_id"'), '"https://example.com/org_id"', 'configure sets org_claim');
select ballast.configure('role_claim', '"https://example.com/role"');
select is(ballast.org_claim(), 'https://example.com/org_id', 'ballast.org_claim() says the configured name at once');
select is(ballast.role_claim(), 'https://example.com/role', 'and ballast.role_claim() too');
select tests.authenticate_with_claims(format('{"sub": "%s", "https://example.com/org_id": "%s", "https://example.com/role": "admin", "org_id": "%s", "role": "member"}',
                                             tests.id('ada'), tests.id('org A'), tests.id('org B')), 'ballast_admin');
select is(ballast.current_org_id(), tests.id('org A'), 'current_org_id() reads the configured org claim (not org_id)');
select is(ballast.current_app_role(), 'admin', 'current_app_role() reads the configured role claim (not role)');
select is((select array_agg(name) from tests.items), array['Item A'], 'the policies act for the configured claims'' organisation');
select is(tests.try_sql(format($$insert into tests.items (org_id, name) values (%L, 'Item A2')$$, tests.id('org A'))), 'allowed',
          'and the admin policy reads the configured role claim');
select tests.clear_authentication();
select matches((ballast.parse_claims(format('{"sub": "a", "https://example.com/org_id": "org A"}'))).problem,
               '^malformed claims: https://example.com/org_id must be an organisation uuid', 'a malformed configured org claim is named');
select matches((ballast.parse_claims('{"sub": "a", "https://example.com/role": "owner"}')).problem,
               '^malformed claims: https://example.com/role must be member or admin', 'a malformed configured role claim is named');
select is((ballast.parse_claims('{"sub": "a", "org_id": "not checked any more"}')).problem, null, 'the default org_id claim is just another claim now');
select is((select ok from ballast.verify__access() where check_name = 'claim names'), true, 'verify: the claim functions agree with the settings');
update ballast.settings set value = '"https://other.example.com/org"' where name = 'org_claim';
select matches((select detail from ballast.verify__access() where check_name = 'claim names' and not ok),
               'select ballast.apply_claim_settings', 'verify: a setting written around configure() is reported, with the fix');
select ballast.apply_claim_settings();
select is(ballast.org_claim(), 'https://other.example.com/org', 'apply_claim_settings() regenerates the functions from the settings');
select is(ballast.configure('org_claim', null), '"org_id"', 'configure(name, null) resets the org claim');
select ballast.configure('role_claim', null);
select is(ballast.org_claim() || ' ' || ballast.role_claim(), 'org_id role', 'and the functions follow');

-- configure() refuses bad claim names and changes nothing then.
select throws_ok($$select ballast.configure('org_claim', '42')$$, '22023',
                 'configure: org_claim must be a JSON string naming a top-level claim of your tokens (1 to 200 characters, no control characters), got 42',
                 'configure: a claim name must be a JSON string');
select throws_ok($$select ballast.configure('role_claim', '""')$$, '22023', null, 'configure: an empty claim name is refused');
select throws_ok(format('select ballast.configure(%L, %L)', 'org_claim', to_jsonb(repeat('x', 201))), '22023', null, 'configure: a claim name of 201 characters is refused');
select throws_ok($$select ballast.configure('org_claim', '"sub"')$$, '22023',
                 'configure: org_claim must not be the registered claim "sub" (sub, exp, iat, nbf, iss, aud and jti mean what RFC 7519 says)',
                 'configure: a registered claim is refused');
select throws_ok($$select ballast.configure('role_claim', '"org_id"')$$, '22023',
                 'configure: role_claim "org_id" is already the org_claim: the organisation and the role need claims of their own',
                 'configure: the role claim cannot be the org claim');
select is(ballast.org_claim() || ' ' || ballast.role_claim() || ' ' || (select count(*) from ballast.settings where name like '%\_claim'),
          'org_id role 0', 'refused calls changed nothing');

-- Roles of yours granted the kit's roles (Supabase's authenticated, say): the kit's policies and grants apply.
create role access_tap_authenticated nologin;
create role access_tap_admins nologin;
grant ballast_member to access_tap_authenticated;
grant ballast_admin to access_tap_admins;
select tests.authenticate_with_claims(tests.claims_for('alice', 'org A'), 'access_tap_authenticated');
select is((select array_agg(name) from tests.items), array['Item A'], 'a role granted ballast_member passes the member policies');
select is(tests.try_sql(format($$insert into tests.items (org_id, name) values (%L, 'Item X')$$, tests.id('org A'))), 'denied',
          'and has no more than ballast_member''s grants');
select is((select ok from ballast.explain_access('tests.items', 'select', null) where check_name = 'policy for role'), true,
          'explain_access: the member policies cover it');
select tests.clear_authentication();
select tests.authenticate_with_claims(tests.claims_for('ada', 'org A'), 'access_tap_admins');
select is(tests.try_sql(format($$insert into tests.items (org_id, name) values (%L, 'Item Y')$$, tests.id('org A'))), 'allowed',
          'a role granted ballast_admin passes the admin policies (policies to ballast_admin apply to its members)');
select is(tests.try_sql(format($$insert into tests.items (org_id, name) values (%L, 'Item Y')$$, tests.id('org B'))), 'denied',
          'and only for its organisation');
select tests.clear_authentication();

-- verify checks the roles named in visitor_roles: the kit role's rights, no more, no RLS bypass.
create role access_tap_noinherit nologin noinherit;
grant ballast_member to access_tap_noinherit;
create role access_tap_both nologin;
grant ballast_member, ballast_admin to access_tap_both;
select ballast.configure('visitor_roles', '{"access_tap_authenticated": "ballast_member", "access_tap_admins": "ballast_admin",
  "access_tap_noinherit": "ballast_member", "access_tap_both": "ballast_member", "access_tap_missing": "ballast_anonymous"}');
create temp view visitor_checks as
  select check_name, ok, detail from ballast.verify__core() where check_name like 'visitor role %';
grant select on visitor_checks to public;
select is((select array_agg(check_name order by check_name) from visitor_checks where ok),
          array['visitor role access_tap_admins', 'visitor role access_tap_authenticated'], 'verify: roles granted their kit role are ok');
select matches((select detail from visitor_checks where check_name = 'visitor role access_tap_noinherit'),
               'does not have the rights of ballast_member: .*alter role access_tap_noinherit inherit', 'verify: a NOINHERIT member is not ok, and told why');
select matches((select detail from visitor_checks where check_name = 'visitor role access_tap_both'),
               'also a member of ballast_admin', 'verify: a member visitor that is also an admin is not ok');
select matches((select detail from visitor_checks where check_name = 'visitor role access_tap_missing'),
               '^missing: create role access_tap_missing', 'verify: a missing role is not ok');
alter role access_tap_authenticated bypassrls;
select is((select ok from visitor_checks where check_name = 'visitor role access_tap_authenticated'), false, 'verify: a visitor role with BYPASSRLS is not ok');
alter role access_tap_authenticated nobypassrls;
select throws_ok($$select ballast.configure('visitor_roles', '{"authenticated": "superuser"}')$$, '22023', null,
                 'configure: visitor_roles maps only to the kit''s visitor roles');
select throws_ok($$select ballast.configure('visitor_roles', '{"ballast_member": "ballast_admin"}')$$, '22023', null,
                 'configure: a kit role is not a role of yours');
select throws_ok($$select ballast.configure('visitor_roles', '["authenticated"]')$$, '22023', null, 'configure: visitor_roles is an object');
select is((select count(*)::int from visitor_checks), 5, 'refused calls left the setting as it was');
select ballast.configure('visitor_roles', null);

-- explain_access: which check fails, for each kind of visitor.
create function pg_temp.explain(tbl regclass, cmd text, row_data jsonb) returns jsonb as $$
  select jsonb_object_agg(check_name, ok) from ballast.explain_access(tbl, cmd, row_data)
$$ language sql;
create function pg_temp.detail(tbl regclass, cmd text, row_data jsonb, check_name text) returns text as $$
  select e.detail from ballast.explain_access(tbl, cmd, row_data) e where e.check_name = detail.check_name
$$ language sql;

select tests.authenticate_as_anonymous();
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Item I')) -> 'session',
          'false', 'anonymous: the session check fails');
select matches(pg_temp.detail('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A')), 'session'),
               '^no claims', 'anonymous: the detail says there is no token');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'))) -> 'privilege',
          'false', 'anonymous: no INSERT privilege');
select is(pg_temp.explain('tests.items', 'select', null) -> 'policy for role', 'false', 'anonymous: no policy for its role');
select tests.clear_authentication();

select tests.authenticate_with_claims('{"sub": 42}', 'ballast_member');
select matches(pg_temp.detail('tests.items', 'select', null, 'session'), '^malformed claims: sub',
               'malformed claims: explain_access says what is malformed');
select tests.clear_authentication();
select tests.authenticate_with_claims('{"sub": "auth0|123"}', 'ballast_member');
select is(pg_temp.detail('tests.items', 'select', null, 'session'), 'user auth0|123, org (none), role (none)',
          'a subject that is not a uuid is a session to explain_access too');
select tests.clear_authentication();

select tests.authenticate_as('alice', 'org A');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Item I')),
          '{"session": true, "policies": false, "privilege": false, "org match": true, "column privilege": false, "policy for role": false}',
          'member of org A inserting an item: the privilege and policy-for-role checks fail');
select matches(pg_temp.detail('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A')), 'privilege'),
               'role ballast_member has no INSERT on tests.items', 'the detail names role, command and table');
select is(pg_temp.explain('tests.items', 'select', jsonb_build_object('org_id', tests.id('org A'))) -> 'policies',
          'true', 'member of org A may read an item of org A');
select tests.clear_authentication();

select tests.authenticate_as('ada', 'org A');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Item I')),
          '{"session": true, "policies": true, "privilege": true, "org match": true, "column privilege": true, "policy for role": true, "policy items_insert_admin": true}',
          'admin of org A inserting an item of org A: every check passes');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org B'), 'name', 'Item I')),
          '{"session": true, "policies": false, "privilege": true, "org match": false, "column privilege": true, "policy for role": true, "policy items_insert_admin": false}',
          'admin of org A inserting an item of org B: org match and the policy fail');
select matches(pg_temp.detail('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org B')), 'org match'),
               format('row org_id %s, session org_id %s', tests.id('org B'), tests.id('org A')), 'the detail shows both org ids');
select matches(pg_temp.detail('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org B')), 'policy items_insert_admin'),
               '^permissive fails: .*current_org_id', 'the policy detail shows the failing expression');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'id', 7, 'nope', 1)) -> 'column privilege',
          'false', 'a column without privilege, or unknown, fails the column check');
select matches(pg_temp.detail('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'nope', 1), 'column privilege'),
               'has no column nope', 'an unknown column is named');
select matches(pg_temp.detail('tests.items', 'update', jsonb_build_object('id', 1, 'org_id', tests.id('org A')), 'column privilege'),
               'may not UPDATE column org_id$', 'columns the admin may not update are named (not the primary key: it names the row)');
select tests.clear_authentication();

-- A member whose token claims admin: the memberships table says member, so the admin policy fails.
select tests.authenticate_as('alice', 'org A', 'admin');
select is(current_user::text, 'ballast_admin', 'a forged admin claim gets the admin database role from the API');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Item I')) -> 'policy items_insert_admin',
          'false', 'forged admin claim: the admin policy fails (memberships says member)');
select is(pg_temp.explain('tests.items', 'insert', jsonb_build_object('org_id', tests.id('org A'), 'name', 'Item I')) -> 'org match',
          'true', 'forged admin claim: the org matches, so only the membership is wrong');
select tests.clear_authentication();

-- explain_access as the API calls it, for the admin case: a set of (check_name, ok, detail) rows.
select tests.authenticate_as('ada', 'org A');
select ok((select count(*) from ballast.explain_access('tests.memberships', 'delete', jsonb_build_object('org_id', tests.id('org A')))) >= 4,
          'explain_access returns one row per check');
select ok((select bool_and(ok) from ballast.explain_access('tests.orgs', 'update', jsonb_build_object('id', tests.id('org A'), 'name', 'A2'))),
          'admin of org A may rename org A');
select ok(not (select bool_and(ok) from ballast.explain_access('tests.orgs', 'update', jsonb_build_object('id', tests.id('org B'), 'name', 'B2'))),
          'admin of org A may not rename org B');
select tests.clear_authentication();

-- Bad input: a specific SQLSTATE, a message naming the bad value.
select throws_ok($$select * from ballast.explain_access('tests.items', 'upsert', null)$$, '22023',
                 'explain_access: command must be select, insert, update or delete, got ''upsert''', 'an unknown command is refused');
select throws_ok($$select * from ballast.explain_access(null, 'select', null)$$, '22004', null, 'a null table is refused');
select throws_ok($$select * from ballast.explain_access('tests.items', 'select', '[1]')$$, '22023',
                 'explain_access: row_data must be a JSON object of column values, got array', 'row_data must be an object');
select lives_ok($$select * from ballast.explain_access('tests.items', 'SELECT', null)$$, 'the command is case-insensitive');

-- verify__access: reports a table without policies and an uncommented SECURITY DEFINER function in an exposed schema.
create schema access_tap;
select ballast.configure('verify_schemas', ballast.setting('verify_schemas') || '["access_tap"]');
select ballast.configure('exposed_schemas', ballast.setting('exposed_schemas') || '["access_tap"]');
create table access_tap.no_policy (id int primary key);
alter table access_tap.no_policy enable row level security;
alter table access_tap.no_policy force row level security;
select is((select ok from ballast.verify__access() where check_name = 'policies access_tap.no_policy'), false,
          'verify__access: a table without policies is not ok');
create function access_tap.definer_probe() returns int as $$ select 1 $$ language sql security definer;
select is((select ok from ballast.verify__access() where check_name = 'security definer access_tap.definer_probe()'), false,
          'verify__access: an uncommented SECURITY DEFINER function in an exposed schema is not ok');
comment on function access_tap.definer_probe() is 'Returns 1; safe because it reads nothing.';
select is((select ok from ballast.verify__access() where check_name = 'security definer access_tap.definer_probe()'), true,
          'verify__access: a comment saying why it is safe makes it ok');

select * from finish();
rollback;
