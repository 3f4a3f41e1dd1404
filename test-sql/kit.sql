-- The kit's shared pieces: owner_only_policy, schedule_job and unschedule_job, version(), the settings
-- (setting_defaults, setting, configure, verify_schemas), the bookkeeping tables' RLS, the ensure_*
-- helpers (policies, triggers, views left alone when unchanged) and compatible_since(). Every function
-- that takes input is tried with bad input, for its SQLSTATE.
begin;
select plan(120);

-- schedule_job: creates a named pg_cron job, updates it in place, validates its input.
select isnt(ballast.schedule_job('ballast test job', '*/5 * * * *', 'select 1'), null, 'schedule_job returns the new job''s id');
select is((select schedule || ' | ' || command from cron.job where jobname = 'ballast test job'), '*/5 * * * * | select 1',
          'the job has the schedule and command given');
select is(ballast.schedule_job('ballast test job', '7 * * * *', 'select 2'),
          (select jobid from cron.job where jobname = 'ballast test job'), 'scheduling the same name again keeps its id');
select is((select count(*)::int from cron.job where jobname = 'ballast test job'), 1, 'and updates the one job in place');
select is((select schedule from cron.job where jobname = 'ballast test job'), '7 * * * *', 'with the new schedule');
select throws_ok($$select ballast.schedule_job('Bad-Name!', '* * * * *', 'select 1')$$, '22023', null, 'a bad job name: 22023');
select throws_like($$select ballast.schedule_job('Bad-Name!', '* * * * *', 'select 1')$$,
                   '%job_name ''Bad-Name!'' must be 1 to 63 characters%', 'a bad job name is refused, naming it');
select throws_ok($$select ballast.schedule_job(null, '* * * * *', 'select 1')$$, '22023', null, 'a null job name: 22023');
select throws_ok($$select ballast.schedule_job('ballast test job', null, 'select 1')$$, '22004', null, 'a missing schedule: 22004');
select throws_ok($$select ballast.schedule_job('ballast test job', '* * * * *', ' ')$$, '22004', null, 'an empty command: 22004');

-- unschedule_job: removes the job; false when there is none
select is(ballast.unschedule_job('ballast test job'), true, 'unschedule_job removes the job');
select is(ballast.unschedule_job('ballast test job'), false, 'and says false when there is none');
select throws_ok($$select ballast.unschedule_job(null)$$, '22004', null, 'unschedule_job(null): 22004');

-- schedule_job where pg_cron cannot be used: a role without usage on schema cron gets null and a notice,
-- not an error (the installer may run as such a role).
create role ballast_test_no_cron nologin;
grant usage on schema ballast to ballast_test_no_cron;
grant execute on function ballast.schedule_job(text, text, text) to ballast_test_no_cron;
set local role ballast_test_no_cron;  -- the result is kept in a setting: this role may not call pgTAP
set local client_min_messages = warning;  -- its notice says why; pgTAP cannot assert a notice
select set_config('kit_test.no_cron_result', coalesce(ballast.schedule_job('ballast test job', '* * * * *', 'select 1')::text, 'null'), true);
reset role;
reset client_min_messages;
select is(current_setting('kit_test.no_cron_result'), 'null', 'a role that may not use schema cron: schedule_job returns null, no error');
select is((select count(*)::int from cron.job where jobname = 'ballast test job'), 0, 'and schedules nothing');

-- ... and where pg_cron is not installed (the shadow database, any database but cron.database_name):
-- hidden here by renaming its schema inside this transaction (rolled back; other sessions never see it).
alter schema cron rename to cron_hidden_by_kit_test;
select is(ballast.schedule_job('ballast test job', '* * * * *', 'select 1'), null::bigint,
          'without pg_cron: schedule_job returns null, no error');
select is(ballast.unschedule_job('ballast test job'), false, 'without pg_cron: unschedule_job returns false, no error');
alter schema cron_hidden_by_kit_test rename to cron;

-- owner_only_policy: refuses null and what is not a table
select throws_ok($$select ballast.owner_only_policy(null)$$, '22004', null, 'owner_only_policy(null): 22004');
create view pg_temp.kit_test_view as select 1 as n;
select throws_ok($$select ballast.owner_only_policy('pg_temp.kit_test_view')$$, '42809', null, 'owner_only_policy on a view: 42809');

-- version(): the package.json version of the installer, the newest ballast.installs row.
-- (pg_prove runs from the repository root, as npm test does, so package.json is found there)
\set package_version `node -p "JSON.parse(require('fs').readFileSync('package.json', 'utf8')).version"`
select is(ballast.version(), :'package_version', 'version() is package.json''s version');
select is(ballast.version(), (select version from ballast.installs order by id desc limit 1), 'version() is the newest ballast.installs row');

-- The bookkeeping tables: RLS enabled and forced (only the owner reads or writes them).
select is((select string_agg(c.relname, ', ' order by c.relname) from pg_class c
            where c.relnamespace = 'ballast'::regnamespace and c.relname in ('migrations', 'installs', 'created_roles', 'settings')
              and c.relrowsecurity and c.relforcerowsecurity),
          'created_roles, installs, migrations, settings', 'ballast.migrations, installs, created_roles and settings have RLS forced');

-- setting_defaults(): every setting, with its default and a description.
select ok(array(select name from ballast.setting_defaults()) @> array['exposed_schemas', 'verify_schemas'],
          'setting_defaults() lists the settings (these two among them)');
select ok((select bool_and(value is not null and length(description) > 20) from ballast.setting_defaults()),
          'each with a default value and a description');

-- configure() and setting(): set, read back, reset with null (to the default).
select is(ballast.configure('exposed_schemas', '["kit_test_a"]'), '["kit_test_a"]'::jsonb, 'configure returns the value it set');
select is(ballast.setting('exposed_schemas'), '["kit_test_a"]'::jsonb, 'setting() reads it back');
select is(ballast.configure('exposed_schemas', null), '[]'::jsonb, 'configure(name, null) returns the default');
select is(ballast.setting('exposed_schemas'), (select value from ballast.setting_defaults() where name = 'exposed_schemas'),
          'and setting() is the default again');
select is((select count(*)::int from ballast.settings where name = 'exposed_schemas'), 0, 'a reset leaves no row behind');
select is(ballast.setting('no_such_setting'), null, 'setting() of a name that is not a setting is null (documented, not an error)');

-- configure() bad input: 22023, the message names the bad name or value.
select throws_ok($$select ballast.configure('no_such_setting', '[]')$$, '22023', 'configure: unknown setting ''no_such_setting''',
                 'an unknown setting: 22023, named');
select throws_ok($$select ballast.configure(null, '[]')$$, '22023', null, 'a null setting name: 22023');
select throws_like($$select ballast.configure('verify_schemas', '"app"')$$,
                   'configure: verify_schemas must be a JSON array of schema names%, got "app"', 'a string, not an array, is refused, naming it');
select throws_ok($$select ballast.configure('verify_schemas', '["ok", 42]')$$, '22023', null, 'an array with a number: 22023');
select throws_like($$select ballast.configure('exposed_schemas', '[""]')$$, '%got [""]', 'an empty schema name is refused, naming the value');
select throws_ok($$select ballast.configure('exposed_schemas', format('[%s]', to_json(repeat('s', 64)))::jsonb)$$, '22023', null,
                 'a schema name over 63 characters: 22023');

-- worker_schema: the graphile-worker schema the kit queues jobs in (test-sql/invalidation.sql and api.sql
-- show the queueing follows it). A schema that does not exist yet is accepted (graphile-worker creates it
-- when its runner first starts); one that exists must have graphile-worker's add_jobs.
select is((select value from ballast.setting_defaults() where name = 'worker_schema'), '"ballast_worker"'::jsonb,
          'worker_schema defaults to ballast''s own graphile-worker schema');
select is(ballast.worker_schema(), 'ballast_worker'::name, 'worker_schema() reads the default');
select is(ballast.configure('worker_schema', '"kit_test_gw_later"'), '"kit_test_gw_later"'::jsonb, 'a schema not created yet is accepted');
select is(ballast.worker_schema(), 'kit_test_gw_later'::name, 'worker_schema() reads the setting');
select throws_ok($$select ballast.configure('worker_schema', '42')$$, '22023',
                 'configure: worker_schema must be a JSON string naming a graphile-worker schema (1 to 63 bytes, not ballast or pg_*), got 42',
                 'worker_schema: a number is refused (22023), naming the value');
select throws_like($$select ballast.configure('worker_schema', '""')$$, '%got ""', 'worker_schema: an empty name is refused, naming the value');
select throws_ok($$select ballast.configure('worker_schema', to_jsonb(repeat('w', 64)))$$, '22023', null, 'worker_schema: 64 bytes: 22023');
select throws_like($$select ballast.configure('worker_schema', '"ballast"')$$, '%not ballast or pg_*), got "ballast"', 'worker_schema: the kit''s own schema is refused');
select throws_ok($$select ballast.configure('worker_schema', '"public"')$$, '22023',
                 'configure: worker_schema "public" names a schema without graphile-worker (no function public.add_jobs)',
                 'worker_schema: an existing schema that is not graphile-worker''s is refused (22023), naming it');
select is(ballast.worker_schema(), 'kit_test_gw_later'::name, 'refused values leave the setting as it was');
select is(ballast.configure('worker_schema', '"ballast_worker"'), '"ballast_worker"'::jsonb, 'a graphile-worker schema that exists is accepted');
select is(ballast.configure('worker_schema', null), '"ballast_worker"'::jsonb, 'worker_schema reset to the default');

-- verify_schemas(): ballast plus the configured schemas; verify_migration_success() checks only those.
select ballast.configure('verify_schemas', '["kit_test_a", "kit_test_b"]');
select is(ballast.verify_schemas(), array['ballast', 'kit_test_a', 'kit_test_b']::name[], 'verify_schemas() is ballast plus the setting');
create schema kit_test_a;
create schema kit_test_c;
create table kit_test_a.no_rls (id int primary key);
create table kit_test_c.no_rls (id int primary key);
select is(array(select check_name || ' ' || ok from ballast.verify_migration_success() where check_name like 'rls kit\_test\_%' order by 1),
          array['rls kit_test_a.no_rls false'], 'verify_migration_success checks a configured schema, not another');
select ballast.configure('verify_schemas', null);
select is(ballast.verify_schemas(), array['ballast']::name[], 'reset: verify_schemas() is ballast alone');

-- The ensure_* helpers: create what is missing, leave what is unchanged (no lock on the table), replace
-- what differs. Fixtures in schema kit_test_p (rolled back with the rest).
create schema kit_test_p;
create table kit_test_p.t (id int primary key, org_id int);
create table kit_test_p.other (id int primary key);
create view kit_test_p.not_a_table as select 1 as n;
create function kit_test_p.tg() returns trigger as $$ begin return null; end; $$ language plpgsql;

-- sql_text_key: the comparison key
select is(ballast.sql_text_key(E'  AFTER  Insert\n ON x  EXECUTE FUNCTION f( ''A b'' , "Q" ) ; '),
          'after insert on x execute function f(''A b'',"Q")', 'sql_text_key: lower case, one space, none around ( ) , ; quoted parts kept');
select is(ballast.sql_text_key(null), null, 'sql_text_key(null) is null');

-- ensure_policy
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member']::name[], 'org_id = 1'), true,
          'ensure_policy creates a missing policy (true)');
select is((select qual from pg_policies where schemaname = 'kit_test_p' and policyname = 'p_read'), '(org_id = 1)', 'with the expression given');
select set_config('kit_test.policy_oid', (select oid::text from pg_policy where polname = 'p_read'), true);
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member']::name[], 'org_id = 1'), false,
          'the same policy again: nothing done (false)');
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'SELECT', array['ballast_member']::name[], '((org_id=1))'), false,
          'written differently, parsed the same: nothing done');
select is((select oid::text from pg_policy where polname = 'p_read'), current_setting('kit_test.policy_oid'), 'the policy was not re-created');
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member']::name[], 'org_id = 2'), true,
          'another expression: replaced (true)');
select is((select qual from pg_policies where schemaname = 'kit_test_p' and policyname = 'p_read'), '(org_id = 2)', 'with the new expression');
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member', 'ballast_admin']::name[], 'org_id = 2'), true,
          'other roles: replaced');
select is(ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member', 'ballast_admin']::name[], 'org_id = 2', permissive => false), true,
          'restrictive instead of permissive: replaced');
select is((select permissive || ' ' || (select string_agg(r, ',' order by r) from unnest(roles) r) from pg_policies where schemaname = 'kit_test_p' and policyname = 'p_read'),
          'RESTRICTIVE ballast_admin,ballast_member', 'restrictive, to both roles');
select is(ballast.ensure_policy('kit_test_p.t', 'p_insert', 'insert', array['public']::name[], check_expr => 'pg_trigger_depth() > 0'), true,
          'an insert policy with only check_expr');
select is(ballast.ensure_policy('kit_test_p.t', 'p_insert', 'insert', array['public']::name[], check_expr => 'pg_trigger_depth() > 0'), false,
          'and again: nothing done');
select throws_ok($$select ballast.ensure_policy(null, 'p', 'all', array['public']::name[], 'true')$$, '22004', null, 'ensure_policy(null table): 22004');
select throws_ok($$select ballast.ensure_policy('kit_test_p.not_a_table', 'p', 'all', array['public']::name[], 'true')$$, '42809',
                 'ensure_policy: kit_test_p.not_a_table is not a table (relkind v); policies belong to tables', 'on a view: 42809, naming it');
select throws_like($$select ballast.ensure_policy('kit_test_p.t', 'p', 'upsert', array['public']::name[], 'true')$$,
                   '%command must be all, select, insert, update or delete, got ''upsert''%', 'a bad command is refused, naming it');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', 'p', 'all', array['no_such_role']::name[], 'true')$$, '42704',
                 'ensure_policy: role no_such_role does not exist (policy p on kit_test_p.t)', 'an unknown role: 42704, naming it');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', 'p', 'all', array[]::name[], 'true')$$, '22023', null, 'no roles: 22023');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', 'p', 'all', array['public']::name[])$$, '22023',
                 'ensure_policy: policy p on kit_test_p.t needs using_expr, check_expr or both, got neither', 'no expression: 22023');
select throws_like($$select ballast.ensure_policy('kit_test_p.t', 'p', 'insert', array['public']::name[], 'org_id = 1')$$,
                   '%insert policy takes only check_expr, got using_expr ''org_id = 1''%', 'using_expr on an insert policy: 22023, naming it');
select throws_like($$select ballast.ensure_policy('kit_test_p.t', 'p', 'select', array['public']::name[], 'true', 'true')$$,
                   '%select policy takes only using_expr, got check_expr ''true''%', 'check_expr on a select policy is refused');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', null, 'all', array['public']::name[], 'true')$$, '22023', null, 'a null policy name: 22023');

-- ensure_trigger
select is(ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert or delete on kit_test_p.t for each statement execute function kit_test_p.tg()'), true,
          'ensure_trigger creates a missing trigger (true)');
select set_config('kit_test.trigger_oid', (select oid::text from pg_trigger where tgname = '_500_t'), true);
select is(ballast.ensure_trigger('kit_test_p.t', '_500_t', 'AFTER INSERT OR DELETE ON kit_test_p.t  FOR EACH STATEMENT EXECUTE FUNCTION kit_test_p.tg ( )'), false,
          'the same trigger again, spelled differently: nothing done (false)');
select is((select oid::text from pg_trigger where tgname = '_500_t'), current_setting('kit_test.trigger_oid'), 'the trigger was not re-created');
select is(ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert on kit_test_p.t for each statement execute function kit_test_p.tg(''a'', ''B'')'), true,
          'other events and arguments: replaced (true)');
select is(pg_get_triggerdef((select oid from pg_trigger where tgname = '_500_t'), true),
          'CREATE TRIGGER _500_t AFTER INSERT ON kit_test_p.t FOR EACH STATEMENT EXECUTE FUNCTION kit_test_p.tg(''a'', ''B'')', 'with the new definition');
select is(ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert on kit_test_p.t for each statement execute function kit_test_p.tg(''a'', ''B'')'), false,
          'arguments compared as written: nothing done');
alter table kit_test_p.t disable trigger _500_t;
select is(ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert on kit_test_p.t for each statement execute function kit_test_p.tg(''a'', ''B'')'), true,
          'a disabled trigger is re-created');
select is((select tgenabled::text from pg_trigger where tgname = '_500_t'), 'O', 'enabled');
select throws_ok($$select ballast.ensure_trigger(null, '_500_t', 'after insert on kit_test_p.t for each statement execute function kit_test_p.tg()')$$,
                 '22004', null, 'ensure_trigger(null table): 22004');
select throws_ok($$select ballast.ensure_trigger('kit_test_p.t', '', 'after insert on kit_test_p.t for each statement execute function kit_test_p.tg()')$$,
                 '22023', null, 'an empty trigger name: 22023');
select throws_like($$select ballast.ensure_trigger('kit_test_p.t', '_500_u', ' ')$$, '%definition of trigger _500_u on kit_test_p.t must be the text after%',
                   'an empty definition is refused, naming the trigger');
select throws_ok($$select ballast.ensure_trigger('kit_test_p.t', '_500_u', 'after insert on kit_test_p.other for each statement execute function kit_test_p.tg()')$$,
                 '22023', null, 'a definition on another table: 22023');
select is((select count(*)::int from pg_trigger where tgname = '_500_u'), 0, 'and no trigger is left on that table');

-- ensure_view
select is(ballast.ensure_view('kit_test_p.v', 'select id from kit_test_p.t'), true, 'ensure_view creates a missing view (true)');
select set_config('kit_test.view_oid', 'kit_test_p.v'::regclass::oid::text, true);
select is(ballast.ensure_view('kit_test_p.v', 'SELECT  t.id  FROM kit_test_p.t'), false, 'the same query, spelled differently: nothing done (false)');
select is(ballast.ensure_view('kit_test_p.v', 'select id, org_id from kit_test_p.t'), true, 'a column added: replaced (true)');
select is(('kit_test_p.v'::regclass::oid::text, (select count(*)::int from pg_attribute where attrelid = 'kit_test_p.v'::regclass and attnum > 0)),
          (current_setting('kit_test.view_oid'), 2), 'by create or replace (same view, two columns)');
select is(ballast.ensure_view('kit_test_p.v', 'select org_id from kit_test_p.t'), true, 'a column dropped: replaced');
select isnt('kit_test_p.v'::regclass::oid::text, current_setting('kit_test.view_oid'), 'by drop and create');
select is(ballast.ensure_view('kit_test_p.v', 'select org_id from kit_test_p.t', array['security_invoker=true']), true, 'an option added: replaced');
select is((select reloptions from pg_class where oid = 'kit_test_p.v'::regclass), array['security_invoker=true'], 'the view has the option');
select is(ballast.ensure_view('kit_test_p.v', 'select org_id from kit_test_p.t', array['security_invoker=true']), false, 'and again: nothing done');
create view kit_test_p.dependent as select org_id from kit_test_p.v;
select throws_ok($$select ballast.ensure_view('kit_test_p.v', 'select id from kit_test_p.t')$$, '2BP01', null,
                 'a column dropped while another view depends on it: 2BP01 (nothing dropped by cascade)');
select throws_ok($$select ballast.ensure_view('v', 'select 1')$$, '22023', 'ensure_view: view_name must be schema-qualified (schema.view), got ''v''',
                 'an unqualified name: 22023, naming it');
select throws_ok($$select ballast.ensure_view('kit_test_p.w', '')$$, '22023', null, 'an empty query: 22023');
select throws_like($$select ballast.ensure_view('kit_test_p.w', 'select 1', array['security invoker'])$$, '%got ''{"security invoker"}''%',
                   'a malformed option is refused, naming it');
select throws_ok($$select ballast.ensure_view('kit_test_p.t', 'select 1')$$, '42809', 'ensure_view: kit_test_p.t exists and is not a view (relkind r)',
                 'a table of that name: 42809');

-- Bad SQL text (issue 16): an expression, definition or query that does not parse, or names an unknown
-- column, table or function, is bad input like any other: 22023, naming the object and PostgreSQL's error,
-- and the object that was there before is left as it was.
select throws_like($$select ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member']::name[], 'org_id = = 1')$$,
                   'ensure_policy: policy p_read on kit_test_p.t: using_expr ''org_id = = 1'' is not a valid policy on that table: syntax error%(SQLSTATE 42601)',
                   'ensure_policy: a USING expression that does not parse: 22023, naming the policy, the expression and the syntax error');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', 'p_read', 'select', array['ballast_member']::name[], 'no_such_column = 1')$$, '22023', null,
                 'ensure_policy: an unknown column: 22023 (not 42703)');
select throws_ok($$select ballast.ensure_policy('kit_test_p.t', 'p_new', 'insert', array['public']::name[], check_expr => 'org_id')$$, '22023', null,
                 'ensure_policy: a check expression that is not boolean: 22023 (not 42804)');
select is((select pg_get_expr(polqual, polrelid) from pg_policy where polrelid = 'kit_test_p.t'::regclass and polname = 'p_read'), '(org_id = 2)',
          'and the policy that was there is unchanged (the drop was rolled back)');
select is((select count(*)::int from pg_policy where polrelid = 'kit_test_p.t'::regclass and polname = 'p_new'), 0, 'and no new policy is left');
select throws_like($$select ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert on kit_test_p.t for each statement execute function kit_test_p.no_such_fn()')$$,
                   'ensure_trigger: definition ''after insert on kit_test_p.t for each statement execute function kit_test_p.no_such_fn()'' of trigger _500_t on kit_test_p.t is not a valid trigger definition: function kit_test_p.no_such_fn() does not exist (SQLSTATE 42883)',
                   'ensure_trigger: an unknown function: 22023, naming the trigger, the definition and the error');
select throws_ok($$select ballast.ensure_trigger('kit_test_p.t', '_500_t', 'after insert on kit_test_p.t for each statement execute kit_test_p.tg()')$$, '22023', null,
                 'ensure_trigger: a definition that does not parse: 22023 (not 42601)');
select is((select pg_get_triggerdef(oid, true) from pg_trigger where tgrelid = 'kit_test_p.t'::regclass and tgname = '_500_t'),
          'CREATE TRIGGER _500_t AFTER INSERT ON kit_test_p.t FOR EACH STATEMENT EXECUTE FUNCTION kit_test_p.tg(''a'', ''B'')',
          'and the trigger that was there is unchanged (the drop was rolled back)');
select throws_like($$select ballast.ensure_view('kit_test_p.v', 'select no_such_column from kit_test_p.t', array['security_invoker=true'])$$,
                   'ensure_view: the definition of kit_test_p.v is not a valid view query: column "no_such_column" does not exist (SQLSTATE 42703); got %',
                   'ensure_view: an unknown column in an existing view''s new query: 22023, naming the view and the error');
select throws_ok($$select ballast.ensure_view('kit_test_p.w', 'select from from kit_test_p.t')$$, '22023', null,
                 'ensure_view: a new view whose query does not parse: 22023 (not 42601)');
select throws_ok($$select ballast.ensure_view('kit_test_p.w', 'select 1 from kit_test_p.no_such_table')$$, '22023', null,
                 'ensure_view: an unknown table: 22023 (not 42P01)');
select is((select pg_get_viewdef('kit_test_p.v'::regclass, true)), ' SELECT t.org_id
   FROM kit_test_p.t;', 'and the view that was there is unchanged');
select is(to_regclass('kit_test_p.w'), null, 'and no new view is left');

-- The kit's own definitions re-applied unchanged take no lock that would queue a reader or writer: here
-- on objects this test has not touched (a lock stronger than ROW EXCLUSIVE would still be held).
select ballast.owner_only_policy('ballast.worker_heartbeats');
select ballast.ensure_trigger('ballast.audit_log', '_900_retention_delete',
  'after delete on ballast.audit_log referencing old table as old_table for each statement execute function ballast.tg_audit_log__check_retention()');
select ballast.ensure_policy('ballast.audit_log', 'audit_log_org_admin_read', 'select', array['ballast_admin']::name[],
  using_expr => $$org_id = (select ballast.current_org_id()) and (select ballast.current_app_role()) = 'admin' and (select ballast.audit_admin_rule())$$);
select ballast.ensure_view('ballast.admin_audit_log', pg_get_viewdef('ballast.admin_audit_log'), array['security_invoker=true']);
select is(array(select l.relation::regclass::text || ' ' || l.mode from pg_locks l
                 where l.pid = pg_backend_pid() and l.locktype = 'relation'
                   and l.relation in ('ballast.worker_heartbeats'::regclass, 'ballast.audit_log'::regclass, 'ballast.admin_audit_log'::regclass)
                   and l.mode not in ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock')),
          array[]::text[], 'owner_only_policy, ensure_trigger, ensure_policy and ensure_view take no blocking lock when nothing changed');

-- owner_only_policy on a new table: RLS enabled and forced, the owner's policy
create table kit_test_p.t2 (id int);
select ballast.owner_only_policy('kit_test_p.t2');
select is((select relrowsecurity and relforcerowsecurity from pg_class where oid = 'kit_test_p.t2'::regclass), true, 'owner_only_policy enables and forces RLS');
select is((select cmd || ' ' || array_to_string(roles, ',') || ' ' || qual || ' ' || with_check from pg_policies where tablename = 't2' and schemaname = 'kit_test_p'),
          'ALL ' || current_user || ' true true', 'with one policy: the owner may do everything');

-- compatible_since(): the oldest kit version whose code this database serves (api/health.ts)
select ok(string_to_array(ballast.compatible_since(), '.')::int[] <= string_to_array(split_part(ballast.version(), '-', 1), '.')::int[],
          'compatible_since() is a version at or below version()');
select ok(has_function_privilege('ballast_authenticator', 'ballast.compatible_since()', 'execute'), 'the API''s role may call it');

select is(array(select p.proname::text from pg_proc p where p.pronamespace = 'ballast'::regnamespace
                 and p.proname in ('sql_text_key', 'ensure_policy', 'ensure_trigger', 'ensure_view', 'owner_only_policy', 'compatible_since')
                 and obj_description(p.oid, 'pg_proc') is null), array[]::text[], 'each helper has a comment');

select * from finish();
rollback;
