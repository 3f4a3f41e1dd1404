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
