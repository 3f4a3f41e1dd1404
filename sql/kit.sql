-- The kit's shared pieces: the owner-only policy every ballast table gets.
-- ballast tables have RLS enabled and forced; only the owner (the kit's SECURITY DEFINER functions and
-- the pg_cron jobs it schedules) reads and writes them directly, API roles go through functions.

---- owner_only_policy
---- Gives a ballast table RLS (enabled and forced) with one policy: the owner may do everything.
create or replace function ballast.owner_only_policy(tbl regclass)
returns void as $$
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'owner_only_policy: table must not be null';
  end if;
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format('drop policy if exists owner_all on %s', tbl);
  execute format('create policy owner_all on %s for all to %I using (true) with check (true)',
    tbl, (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = tbl));
end;
$$ language plpgsql volatile;
comment on function ballast.owner_only_policy(regclass) is
  E'Enable and force RLS on a kit table and allow its owner everything; other roles get nothing.';

select ballast.owner_only_policy('ballast.verify_exemptions');
select ballast.owner_only_policy('ballast.worker_heartbeats');

---- schedule_job
---- Creates or updates a named pg_cron job, where pg_cron lives (cron.database_name); elsewhere (the
---- shadow database, a database without the extension) it does nothing and says so by returning null.
create or replace function ballast.schedule_job(job_name text, schedule text, command text)
returns bigint as $$
begin
  if job_name is null or job_name !~ '^[a-z][a-z0-9_ ]{0,62}$' then
    raise exception using errcode = '22023',
      message = format('schedule_job: job_name %L must be 1 to 63 characters of a-z, 0-9, _ and space, starting with a letter', job_name);
  end if;
  if schedule is null or command is null or btrim(command) = '' then
    raise exception using errcode = '22004',
      message = format('schedule_job: job %L needs a schedule and a command (got schedule %L, command %L)', job_name, schedule, command);
  end if;
  if to_regnamespace('cron') is null then
    return null;
  end if;
  -- cron.schedule with a name updates the job of that name in place (pg_cron >= 1.3)
  return cron.schedule(job_name, schedule, command);
end;
$$ language plpgsql volatile;
comment on function ballast.schedule_job(text, text, text) is
  E'Create or update the pg_cron job job_name (schedule in UTC, as pg_cron reads it); returns its jobid, or null where pg_cron is not installed (only cron.database_name has it). 22023 for a bad job name, 22004 for a missing schedule or command; pg_cron itself rejects a bad schedule.';

---- unschedule_job
---- Removes a named pg_cron job if it exists; false when there was none or pg_cron is not installed here.
create or replace function ballast.unschedule_job(job_name text)
returns boolean as $$
begin
  if job_name is null then
    raise exception using errcode = '22004', message = 'unschedule_job: job_name must not be null';
  end if;
  if to_regnamespace('cron') is null then
    return false; -- checked alone: a condition naming cron.job could not even be planned here
  end if;
  if not exists (select from cron.job j where j.jobname = unschedule_job.job_name) then
    return false;
  end if;
  return cron.unschedule(job_name);
end;
$$ language plpgsql volatile;
comment on function ballast.unschedule_job(text) is
  E'Remove the pg_cron job job_name; false when no such job exists or pg_cron is not installed in this database. 22004 for a null name.';
