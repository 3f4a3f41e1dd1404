-- Runs as the superuser in a freshly created database: by graphile-migrate after `reset` (main and
-- shadow database), and by scripts/lib/bootstrap.ts before every migrate. Idempotent.
-- Everything here needs superuser rights; everything else belongs to migrations or sql/.

revoke all on database :DATABASE_NAME from public;
grant connect, temporary on database :DATABASE_NAME to :DATABASE_OWNER;
grant connect on database :DATABASE_NAME to ballast_authenticator;
grant connect on database :DATABASE_NAME to ballast_worker_login;
alter schema public owner to :DATABASE_OWNER;
revoke all on schema public from public;
grant usage on schema public to ballast_anonymous, ballast_member, ballast_admin;

-- pg_cron can only be created in cron.database_name; the shadow database goes without it, and the
-- migrations and sql/ files check for the cron schema before they schedule anything.
do $$
begin
  if current_database() = current_setting('cron.database_name', true) then
    create extension if not exists pg_cron;
    grant usage on schema cron to :DATABASE_OWNER;
    -- cleanup (example/sql/app_cleanup.sql) keeps cron.job_run_details to 7 days: its batches are found through an
    -- index leading with end_time and locked with FOR UPDATE SKIP LOCKED, which needs UPDATE privilege on
    -- some column (pg_cron grants SELECT and DELETE to public; its RLS limits each role to its own jobs' rows).
    create index if not exists job_run_details_end_time_idx on cron.job_run_details (end_time);
    grant update (status) on cron.job_run_details to :DATABASE_OWNER;
  end if;
end
$$;
