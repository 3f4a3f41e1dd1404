-- The kit's functions run only where granted (graphile/starter's default). PostgreSQL grants EXECUTE to
-- PUBLIC on every new function, and a per-schema ALTER DEFAULT PRIVILEGES cannot take that back (it only
-- adds to the global defaults, which belong to the installing role and are not the kit's to change). So,
-- after every other definition, this file revokes EXECUTE from PUBLIC on all of the kit's functions and procedures and
-- grants it back to the few meant for everyone. Grants to the kit's own roles are in each capability's file.
revoke execute on all routines in schema ballast from public;

-- ballast.version(): anyone may ask which kit is installed.
-- ballast.record_refresh_request(): the refresh queue's source triggers run as the writer, whoever that is;
-- it only ever marks a registered view stale.
grant execute on function ballast.version(), ballast.record_refresh_request(regclass) to public;
