-- Tenancy and access (capability: access): who is asking, read from the JWT claims the API puts into
-- the transaction, and why a request was denied.
--
-- The API verifies the JWT and sets, per transaction: role (ballast_anonymous | ballast_member |
-- ballast_admin, or a role of yours granted one of them), request.jwt.claims (the token's claims as JSON)
-- and request.id. The claims the kit reads, as identity providers issue them:
--   sub                 the subject, any string of 1 to 128 characters ('auth0|123', 'user_2abc', a uuid):
--                       ballast.current_subject(); ballast.current_user_id() is it as a uuid, when it is one
--   org claim           the organisation's uuid, optional: ballast.current_org_id()
--   role claim          member or admin, optional: ballast.current_app_role()
--   exp                 seconds since 1970, optional; a past exp is no session
-- The org and role claims are named by the settings org_claim and role_claim (default org_id and role;
-- e.g. https://example.com/org_id): see apply_claim_settings below for why reading them costs nothing.
-- Missing, empty ('' after a transaction that set it) or malformed claims mean "no session": the helpers
-- return null, so every policy written with them denies. They never raise: an error would abort the
-- statement before a policy could say no, and a caller that caught it might skip the check.

---- apply_claim_settings
---- (Re)creates ballast.org_claim() and ballast.role_claim(): the configured claim names, as literals.
-- The claims are read on every request and by the audit trigger, where reading ballast.settings would cost
-- more than the rest of the path. An IMMUTABLE SQL function returning a literal is inlined and folded into
-- a constant when a statement or PL/pgSQL expression is planned, so the names cost nothing per call; the
-- plans that folded one are invalidated when it is replaced, so a change reaches every session.
-- ballast.configure() calls this when org_claim or role_claim changes, and this file calls it whenever
-- sql/ is applied (a plain create or replace here would reset the names to their defaults). The settings
-- stay the source of truth; verify__access says when the functions disagree with them.
create or replace function ballast.apply_claim_settings()
returns void as $$
declare
  s record;
  body text;
begin
  for s in select v.name, v.what from (values ('org_claim', 'the uuid of the organisation the session acts for'),
                                              ('role_claim', 'the application role (member or admin)')) v(name, what) loop
    body := format('select %L::text', ballast.setting(s.name) #>> '{}');
    -- replaced only when it changes: replacing invalidates the cached plans of every session
    if body is distinct from (select p.prosrc from pg_proc p where p.oid = to_regprocedure(format('ballast.%I()', s.name))) then
      execute format('create or replace function ballast.%I() returns text as %L language sql immutable parallel safe', s.name, body);
    end if;
    execute format('comment on function ballast.%I() is %L', s.name,
      format('The name of the JWT claim holding %s: %s. Generated from the setting %s by ballast.apply_claim_settings(); change it with ballast.configure(%L, ...), never by hand.',
             s.what, ballast.setting(s.name), s.name, s.name));
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.apply_claim_settings() is
  E'Regenerate ballast.org_claim() and ballast.role_claim() from the settings org_claim and role_claim (ballast.configure() and every apply of sql/ call it). They return the claim names as literals the planner inlines, so the claims path reads no table.';

select ballast.apply_claim_settings();

---- uuid_or_null
---- A text as a uuid when it is one (8-4-4-4-12 hex digits, or 32 without hyphens); otherwise null. Never raises.
-- One use of t (substring returns the whole match, or null): a SQL function whose argument appears twice
-- is not inlined when that argument is costly, e.g. ballast.current_claims() ->> 'sub' in current_user_id().
create or replace function ballast.uuid_or_null(t text)
returns uuid as $$
  select substring(t from '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')::uuid
$$ language sql immutable parallel safe;
comment on function ballast.uuid_or_null(text) is
  E'The text as a uuid when it is written as one (8-4-4-4-12 hex digits, or 32 hex digits), else null; never raises. E.g. join an audit row''s text actor_id to a uuid key: on u.id = ballast.uuid_or_null(a.actor_id).';

---- parse_claims
---- Validates a claims text; returns the claims object, or null and the reason it is not a session.
-- PL/pgSQL sets up each expression it evaluates again in every transaction, and this runs once per
-- request: a well-formed text costs five expressions (one guarded test of its shape, then the role and
-- exp verdict). Only a text that fails the test goes through the step-by-step checks that name the problem.
-- ballast.org_claim() and ballast.role_claim() are constants by the time an expression runs (see above).
create or replace function ballast.parse_claims(raw text, out claims jsonb, out problem text) as $$
declare
  c jsonb;
  id uuid;
  shape_ok boolean;
begin
  begin
    c := raw::jsonb;
    shape_ok := jsonb_typeof(c) = 'object' and jsonb_typeof(c -> 'sub') = 'string' and length(c ->> 'sub') between 1 and 128
                and (not c ? ballast.org_claim()
                     or (jsonb_typeof(c -> ballast.org_claim()) = 'string' and (c ->> ballast.org_claim())::uuid is not null));
  exception when others then
    shape_ok := false;  -- not JSON, or a bad uuid: the checks below say which
  end;
  if not coalesce(shape_ok, false) then
    if raw is null or btrim(raw) = '' then
      problem := 'no claims: request.jwt.claims is not set (no token)';
      return;
    end if;
    -- one subtransaction for every cast that may fail; problem says which step was running
    begin
      problem := 'malformed claims: request.jwt.claims is not valid JSON';
      c := raw::jsonb;
      if jsonb_typeof(c) <> 'object' then
        problem := format('malformed claims: expected a JSON object, got %s', jsonb_typeof(c));
        return;
      end if;
      problem := 'malformed claims: sub must be the subject''s id at the identity provider, a string of 1 to 128 characters';
      if jsonb_typeof(c -> 'sub') is distinct from 'string' or length(c ->> 'sub') not between 1 and 128 then
        return;
      end if;
      if c ? ballast.org_claim() then
        problem := format('malformed claims: %s must be an organisation uuid', ballast.org_claim());
        if jsonb_typeof(c -> ballast.org_claim()) <> 'string' then
          return;
        end if;
        id := (c ->> ballast.org_claim())::uuid;
      end if;
    exception when others then
      return;  -- with the problem of the step that failed
    end;
  end if;
  problem := case
    when c ? ballast.role_claim() and (c ->> ballast.role_claim() is null or c ->> ballast.role_claim() not in ('member', 'admin'))
      then format('malformed claims: %s must be member or admin', ballast.role_claim())
    when not c ? 'exp' then null
    when jsonb_typeof(c -> 'exp') <> 'number' then 'malformed claims: exp must be a number (seconds since 1970)'
    when (c ->> 'exp')::numeric <= extract(epoch from now()) then format('expired claims: exp %s is before now', c ->> 'exp')
  end;
  claims := case when problem is null then c end;
end;
$$ language plpgsql stable;
comment on function ballast.parse_claims(text) is
  E'Validate a JWT claims text: (claims, null) for a session, (null, reason) otherwise. A session needs sub (a string of 1 to 128 characters); the org claim (setting org_claim), when present, must be a uuid, the role claim (setting role_claim) member or admin, exp in the future. Never raises.';

---- current_claims
---- The current transaction's verified claims, or null when there is no (valid) session.
-- Policies and the audit trigger call this several times per statement, so the verdict on a claims text
-- is remembered for the transaction (ballast.claims_ok / ballast.claims_bad hold the text last judged):
-- a repeat costs a string comparison, not a parse in a subtransaction. Whoever could forge those settings
-- could set request.jwt.claims itself, so the memo grants nothing new. (Hence STABLE with a set_config.)
create or replace function ballast.current_claims()
returns jsonb as $$
declare
  raw text := current_setting('request.jwt.claims', true);
  parsed record;
begin
  if raw is null or raw = '' then
    return null;
  elsif raw = current_setting('ballast.claims_ok', true) then
    return raw::jsonb;
  elsif raw = current_setting('ballast.claims_bad', true) then
    return null;
  end if;
  parsed := ballast.parse_claims(raw);
  -- an assignment, not PERFORM: PERFORM runs a whole SELECT through the executor
  raw := set_config(case when parsed.claims is null then 'ballast.claims_bad' else 'ballast.claims_ok' end, raw, true);
  return parsed.claims;
end;
$$ language plpgsql stable;
comment on function ballast.current_claims() is
  E'The JWT claims of the current transaction (request.jwt.claims) as jsonb; null when missing, empty, malformed or expired. Use as (select ballast.current_claims()) in policies.';

---- current_subject
---- The session's subject (claims sub) as the identity provider wrote it, or null.
create or replace function ballast.current_subject()
returns text as $$
  select ballast.current_claims() ->> 'sub'
$$ language sql stable;
comment on function ballast.current_subject() is
  E'The subject (claims sub) of the current session as text, e.g. ''auth0|123'', ''user_2abc'' or a uuid; null without a valid session. What the audit log records as actor_id. Use as (select ballast.current_subject()) in policies.';

---- current_user_id
---- The session's subject as a uuid, or null (no session, or a subject that is not a uuid).
create or replace function ballast.current_user_id()
returns uuid as $$
  select ballast.uuid_or_null(ballast.current_claims() ->> 'sub')
$$ language sql stable;
comment on function ballast.current_user_id() is
  E'The subject (claims sub) of the current session as a uuid; null without a valid session, or when the subject is not a uuid (then use ballast.current_subject()). Never raises. Use as (select ballast.current_user_id()) in policies.';

---- current_org_id
---- The organisation the session acts for (the org claim, setting org_claim), or null.
create or replace function ballast.current_org_id()
returns uuid as $$
  select (ballast.current_claims() ->> ballast.org_claim())::uuid
$$ language sql stable;
comment on function ballast.current_org_id() is
  E'The organisation the current session acts for (the claim named by the setting org_claim, default org_id); null without a valid session or org. Use as (select ballast.current_org_id()) in policies.';

---- current_app_role
---- The role the token claims (member or admin; the claim named by role_claim), or null. A claim, not a proof: check memberships too.
create or replace function ballast.current_app_role()
returns text as $$
  select ballast.current_claims() ->> ballast.role_claim()
$$ language sql stable;
comment on function ballast.current_app_role() is
  E'The application role the token claims (member or admin; the claim named by the setting role_claim, default role); null without a valid session. Policies granting admin rights must also check the membership table: a claim alone is not proof.';

---- current_request_id
---- The API's request id for this transaction (request.id), or null.
create or replace function ballast.current_request_id()
returns text as $$
  select left(nullif(current_setting('request.id', true), ''), 200)
$$ language sql stable;
comment on function ballast.current_request_id() is
  E'The request id the API set for this transaction (request.id); null outside a request.';

---- explain_access
---- For the current claims and role: what the table's access rules need for a command, and which fails.
create or replace function ballast.explain_access(tbl regclass, command text, row_data jsonb default null)
returns table (check_name text, ok boolean, detail text) as $$
declare
  cmd text := lower(btrim(command));
  parsed record;
  rel record;
  pol record;
  unknown_cols text[];
  denied_cols text[];
  org_col_type regtype;
  policy_ok boolean;
  any_permissive boolean := false;
  permissive_ok boolean := false;
  restrictive_ok boolean := true;
  expr text;
begin
  perform ballast.assert_relation(tbl, 'explain_access');
  if cmd is null or cmd not in ('select', 'insert', 'update', 'delete') then
    raise exception using errcode = '22023',
      message = format('explain_access: command must be select, insert, update or delete, got %L', command);
  end if;
  if row_data is not null and jsonb_typeof(row_data) <> 'object' then
    raise exception using errcode = '22023',
      message = format('explain_access: row_data must be a JSON object of column values, got %s', jsonb_typeof(row_data));
  end if;
  select c.oid, c.relkind, c.relrowsecurity, format('%I.%I', n.nspname, c.relname) as name
    into rel from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl;
  if rel.relkind not in ('r', 'p', 'v', 'm', 'f') then
    raise exception using errcode = '42809', message = format('explain_access: %s is not a table or view', tbl);
  end if;

  -- 1. session: are there valid claims at all?
  parsed := ballast.parse_claims(current_setting('request.jwt.claims', true));
  check_name := 'session';
  ok := parsed.claims is not null;
  detail := coalesce(parsed.problem, format('user %s, org %s, role %s', parsed.claims ->> 'sub',
    coalesce(parsed.claims ->> ballast.org_claim(), '(none)'), coalesce(parsed.claims ->> ballast.role_claim(), '(none)')));
  return next;

  -- 2. the database role's privilege on the table (GRANT), and on the columns given (insert, update)
  check_name := 'privilege';
  ok := has_table_privilege(current_user, tbl, cmd)
        or (cmd in ('insert', 'update', 'select') and has_any_column_privilege(current_user, tbl, cmd));
  detail := format('role %s %s %s on %s', current_user, case when ok then 'has' else 'has no' end, upper(cmd), rel.name);
  return next;
  if row_data is not null and cmd in ('insert', 'update') then
    select array_agg(k order by k) filter (where a.attnum is null),
           array_agg(k order by k) filter (where a.attnum is not null and not has_column_privilege(current_user, tbl, a.attname, cmd))
      into unknown_cols, denied_cols
      from jsonb_object_keys(row_data) k
      left join pg_attribute a on a.attrelid = tbl and a.attname = k and a.attnum > 0 and not a.attisdropped
     where cmd = 'insert' or a.attnum is null  -- update: primary key columns identify the row, they are not written
        or not exists (select 1 from pg_index i where i.indrelid = tbl and i.indisprimary and a.attnum = any (i.indkey));
    check_name := 'column privilege';
    ok := denied_cols is null and unknown_cols is null;
    detail := case
      when unknown_cols is not null then format('%s has no column %s', rel.name, array_to_string(unknown_cols, ', '))
      when denied_cols is not null then format('role %s may not %s column %s', current_user, upper(cmd), array_to_string(denied_cols, ', '))
      else format('role %s may %s every column given', current_user, upper(cmd)) end;
    return next;
  end if;

  -- 3. org match: the row's org_id is the organisation the session acts for (tables with an org_id column)
  select a.atttypid::regtype into org_col_type
    from pg_attribute a where a.attrelid = tbl and a.attname = 'org_id' and not a.attisdropped;
  if org_col_type is not null and row_data ? 'org_id' then
    check_name := 'org match';
    ok := parsed.claims is not null and (row_data ->> 'org_id') = (parsed.claims ->> ballast.org_claim());
    detail := format('row org_id %s, session org_id %s', coalesce(row_data ->> 'org_id', 'null'),
      coalesce(parsed.claims ->> ballast.org_claim(), '(no session org)'));
    return next;
  end if;

  if not rel.relrowsecurity then
    check_name := 'row level security';
    ok := true;
    detail := format('%s has no row level security: the privilege decides', rel.name);
    return next;
    return;
  end if;

  -- 4. policies: is there one for this command and role at all?
  check_name := 'policy for role';
  select string_agg(format('%s (%s)', p.polname, case when p.polroles = '{0}' then 'public'
           else (select string_agg(r.rolname, ', ' order by r.rolname) from pg_roles r where r.oid = any (p.polroles)) end), '; ' order by p.polname)
    into detail
    from pg_policy p
   where p.polrelid = tbl and p.polpermissive
     and p.polcmd in ('*', case cmd when 'select' then 'r' when 'insert' then 'a' when 'update' then 'w' else 'd' end)
     and (p.polroles = '{0}' or exists (select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'member')));
  ok := detail is not null;
  detail := case when ok then format('role %s is covered by %s', current_user, detail)
                 else format('no policy lets role %s %s %s', current_user, upper(cmd), rel.name) end;
  return next;

  -- 5. each applicable policy, evaluated for the current claims against row_data (columns not given are null)
  if row_data is null then
    return;
  end if;
  for pol in
    select p.polname, p.polpermissive,
           pg_get_expr(case when cmd = 'insert' then p.polwithcheck else p.polqual end, p.polrelid) as using_or_check,
           case when cmd = 'update' then pg_get_expr(coalesce(p.polwithcheck, p.polqual), p.polrelid) end as update_check
      from pg_policy p
     where p.polrelid = tbl
       and p.polcmd in ('*', case cmd when 'select' then 'r' when 'insert' then 'a' when 'update' then 'w' else 'd' end)
       and (p.polroles = '{0}' or exists (select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'member')))
     order by p.polpermissive desc, p.polname
  loop
    expr := coalesce(pol.using_or_check, 'true');
    if pol.update_check is not null and pol.update_check <> expr then
      expr := format('(%s) and (%s)', expr, pol.update_check);
    end if;
    check_name := format('policy %s', pol.polname);
    begin
      execute format('select coalesce((%s), false) from jsonb_populate_record(null::%s, $1) as %I',
                     expr, tbl, (select c.relname from pg_class c where c.oid = tbl))
        into policy_ok using row_data;
      ok := policy_ok;
      detail := format('%s %s: %s', case when pol.polpermissive then 'permissive' else 'restrictive' end,
                       case when policy_ok then 'passes' else 'fails' end, expr);
    exception when others then
      ok := false;
      detail := format('could not evaluate %s: %s', expr, sqlerrm);
    end;
    if pol.polpermissive then
      any_permissive := true;
      permissive_ok := permissive_ok or ok;
    else
      restrictive_ok := restrictive_ok and ok;
    end if;
    return next;
  end loop;
  check_name := 'policies';
  ok := any_permissive and permissive_ok and restrictive_ok;
  detail := case when not any_permissive then 'no permissive policy applies: denied'
                 when not permissive_ok then 'no permissive policy passes for this row'
                 when not restrictive_ok then 'a restrictive policy fails for this row'
                 else 'the row passes the policies' end;
  return next;
end;
$$ language plpgsql stable;
comment on function ballast.explain_access(regclass, text, jsonb) is
  E'Why is (or would) the current session (claims and role) be denied COMMAND on TBL for ROW_DATA? One row per check: session, privilege, column privilege, org match, policy for role, each policy evaluated against the row, policies. ROW_DATA is the row as column => value (for update: its primary key plus the new values; columns not given count as null). Runs as the caller.';

-- org_claim() and role_claim() too: a function the caller may not execute is not inlined
grant execute on function ballast.parse_claims(text), ballast.current_claims(), ballast.current_subject(),
  ballast.current_user_id(), ballast.current_org_id(), ballast.current_app_role(), ballast.current_request_id(),
  ballast.org_claim(), ballast.role_claim(), ballast.uuid_or_null(text), ballast.explain_access(regclass, text, jsonb),
  ballast.assert_relation(regclass, text)  -- explain_access runs as the caller and checks its table with it
  to ballast_anonymous, ballast_member, ballast_admin;

---- verify__access
---- Every table of the checked schemas has policies; no SECURITY DEFINER function in an exposed schema without a comment saying why it is safe.
create or replace function ballast.verify__access()
returns table (check_name text, ok boolean, detail text) as $$
  select 'policies ' || ballast.qualified_name(c.oid),
         count(p.polname) > 0 or ballast.is_exempt('rls', c.oid),
         case when count(p.polname) > 0 then string_agg(p.polname::text, ', ' order by p.polname)
              when ballast.is_exempt('rls', c.oid) then 'exempt from rls checks'
              else format('no policy: with RLS forced nobody, not even the owner, can use %s; write its policies (select ballast.owner_only_policy(%L) at least)',
                          c.oid::regclass, ballast.qualified_name(c.oid)) end
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_policy p on p.polrelid = c.oid
   where c.relkind in ('r', 'p') and n.nspname = any(ballast.verify_schemas()) and n.nspname <> 'ballast'
   group by c.oid
  union all
  select 'security definer ' || p.oid::regprocedure::text,
         coalesce(obj_description(p.oid, 'pg_proc'), '') ~* 'safe',
         case when coalesce(obj_description(p.oid, 'pg_proc'), '') ~* 'safe' then 'commented: ' || obj_description(p.oid, 'pg_proc')
              else format('functions of an exposed schema run as their caller unless a comment says why SECURITY DEFINER is safe: comment on function %s is ''... safe because ...''', p.oid::regprocedure) end
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
   where n.nspname in (select jsonb_array_elements_text(ballast.setting('exposed_schemas'))) and p.prosecdef
  union all
  -- the generated claim-name functions say what the settings say (they differ after a direct write to ballast.settings)
  select 'claim names',
         ballast.org_claim() = ballast.setting('org_claim') #>> '{}' and ballast.role_claim() = ballast.setting('role_claim') #>> '{}',
         case when ballast.org_claim() = ballast.setting('org_claim') #>> '{}' and ballast.role_claim() = ballast.setting('role_claim') #>> '{}'
              then format('org claim %s, role claim %s', ballast.setting('org_claim'), ballast.setting('role_claim'))
              else format('ballast.org_claim() is %L and ballast.role_claim() %L, but the settings org_claim and role_claim are %s and %s: select ballast.apply_claim_settings() (and change settings with ballast.configure())',
                          ballast.org_claim(), ballast.role_claim(), ballast.setting('org_claim'), ballast.setting('role_claim')) end
$$ language sql stable;
comment on function ballast.verify__access() is
  E'Checks for verify_migration_success(): policies on every table of the schemas in the setting verify_schemas, SECURITY DEFINER functions of the schemas in exposed_schemas commented as safe, and ballast.org_claim() / role_claim() agreeing with the settings org_claim and role_claim.';
