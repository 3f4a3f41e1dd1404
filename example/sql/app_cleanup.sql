-- Example app: pg_cron's run history (cron.job_run_details, pg_cron issue #416) is kept 7 days. The kit
-- does not clean pg_cron's table by itself: it is not the kit's, and a policy installed by a superuser
-- would delete every application's history. On its own cluster the example wants it, so it adds the
-- policy the way a user would. The index and the grant it needs are superuser setup in
-- example/migrations/after_reset.sql. Only where pg_cron lives (not in the shadow database).
do $$
begin
  if to_regclass('cron.job_run_details') is not null then
    perform ballast.add_cleanup_policy('cron.job_run_details', 'end_time', interval '7 days', 1000, '57 3 * * *');
  end if;
end
$$;
