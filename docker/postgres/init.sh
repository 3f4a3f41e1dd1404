#!/bin/sh
# Runs once, when the container's data folder is new (docker-entrypoint-initdb.d): the superuser setup the
# example app needs on the server compose creates, the same as example/migrations/after_reset.sql does
# on the project's own cluster. The scripts never do this on a database they did not create.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_password="$BALLAST_OWNER_PASSWORD" <<'SQL'
create role ballast_owner login password :'owner_password' nosuperuser nobypassrls;
alter database ballast owner to ballast_owner;
create extension if not exists pg_cron;
grant usage on schema cron to ballast_owner;
create index if not exists job_run_details_end_time_idx on cron.job_run_details (end_time);
grant update (status) on cron.job_run_details to ballast_owner;
SQL
