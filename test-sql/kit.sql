-- The kit's shared pieces: owner_only_policy, schedule_job and unschedule_job, version(), the settings
-- (setting_defaults, setting, configure, verify_schemas) and the bookkeeping tables' RLS. Every function
-- that takes input is tried with bad input, for its SQLSTATE.
begin;
select plan(39);

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

select * from finish();
rollback;
