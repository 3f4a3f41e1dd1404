// Tiny app_public functions the API suites use to see what the database sees (role, claims, request
// id), to take time, to fail, or to return a list. Created as the superuser before an API starts (so
// PostGraphile exposes them) and dropped after. Not a test file.
import { cfg, withClient } from './helpers.ts';

const VISITORS = 'ballast_anonymous, ballast_member, ballast_admin';

export async function createApiFixtures(): Promise<void> {
  await withClient(cfg.rootUrl, (c) => c.query(`
    create or replace function app_public.ballast_test_whoami() returns json as $$
      select json_build_object('role', current_user, 'claims', current_setting('request.jwt.claims', true),
                               'requestId', current_setting('request.id', true))
    $$ language sql stable;
    create or replace function app_public.ballast_test_sleep(ms int) returns int as $$
      select ms from pg_sleep(ms / 1000.0)
    $$ language sql stable;
    create or replace function app_public.ballast_test_fail(sqlstate text) returns int as $$
    begin
      raise exception using errcode = sqlstate, message = 'ballast test failure ' || sqlstate;
    end
    $$ language plpgsql stable;
    create or replace function app_public.ballast_test_numbers(n int) returns setof int as $$
      select generate_series(1, n)
    $$ language sql stable;
    create or replace function app_public.ballast_test_touch() returns int as $$
      select 1
    $$ language sql volatile;
    grant execute on function app_public.ballast_test_whoami(), app_public.ballast_test_sleep(int),
      app_public.ballast_test_fail(text), app_public.ballast_test_numbers(int), app_public.ballast_test_touch() to ${VISITORS};
  `));
}

export async function dropApiFixtures(): Promise<void> {
  await withClient(cfg.rootUrl, (c) => c.query(`
    drop function if exists app_public.ballast_test_whoami();
    drop function if exists app_public.ballast_test_sleep(int);
    drop function if exists app_public.ballast_test_fail(text);
    drop function if exists app_public.ballast_test_numbers(int);
    drop function if exists app_public.ballast_test_touch();
  `));
}

export type GqlResponse = { status: number; headers: Headers; body: { data?: Record<string, unknown>; errors?: { message: string; extensions?: Record<string, unknown> }[] } };

/** POSTs a GraphQL query; returns status, headers and the parsed JSON body. */
export async function gql(url: string, query: string, opts: { token?: string; headers?: Record<string, string>; variables?: Record<string, unknown>; operationName?: string } = {}): Promise<GqlResponse> {
  const r = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    body: JSON.stringify({ query, variables: opts.variables, operationName: opts.operationName }),
  });
  const text = await r.text();
  let body: GqlResponse['body'];
  try { body = JSON.parse(text); } catch { body = { errors: [{ message: text }] }; }
  return { status: r.status, headers: r.headers, body };
}
