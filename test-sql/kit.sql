-- The kit's shared pieces: owner_only_policy, schedule_job and unschedule_job.
begin;
select plan(12);

-- schedule_job: creates a named pg_cron job, updates it in place, validates its input.
select isnt(ballast.schedule_job('ballast test job', '*/5 * * * *', 'select 1'), null, 'schedule_job returns the new job''s id');
select is((select schedule || ' | ' || command from cron.job where jobname = 'ballast test job'), '*/5 * * * * | select 1',
          'the job has the schedule and command given');
select is(ballast.schedule_job('ballast test job', '7 * * * *', 'select 2'),
          (select jobid from cron.job where jobname = 'ballast test job'), 'scheduling the same name again keeps its id');
select is((select count(*)::int from cron.job where jobname = 'ballast test job'), 1, 'and updates the one job in place');
select is((select schedule from cron.job where jobname = 'ballast test job'), '7 * * * *', 'with the new schedule');
select throws_like($$select ballast.schedule_job('Bad-Name!', '* * * * *', 'select 1')$$,
                   '%job_name ''Bad-Name!'' must be 1 to 63 characters%', 'a bad job name is refused, naming it');
select throws_ok($$select ballast.schedule_job('ballast test job', null, 'select 1')$$, '22004', null, 'a missing schedule: 22004');
select throws_ok($$select ballast.schedule_job('ballast test job', '* * * * *', ' ')$$, '22004', null, 'an empty command: 22004');

-- unschedule_job: removes the job; false when there is none
select is(ballast.unschedule_job('ballast test job'), true, 'unschedule_job removes the job');
select is(ballast.unschedule_job('ballast test job'), false, 'and says false when there is none');
select throws_ok($$select ballast.unschedule_job(null)$$, '22004', null, 'unschedule_job(null): 22004');

-- owner_only_policy: refuses null
select throws_ok($$select ballast.owner_only_policy(null)$$, '22004', null, 'owner_only_policy(null): 22004');

select * from finish();
rollback;
