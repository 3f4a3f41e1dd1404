// "Why denied" hints through real GraphQL requests: the API process for anonymous visitors, and the
// API's own preset (plugins, maskError) served over HTTP with admin and member pgSettings, the way the
// JWT middleware will set them (it does not exist yet: only where pgSettings come from is replaced).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import pg from 'pg';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import { parse, GraphQLError } from 'postgraphile/graphql';
import { makeBallastPreset } from '../api/index.ts';
import { describeDenial, GENERIC_HINT_ANONYMOUS, GENERIC_HINT_MEMBER } from '../api/why_denied.ts';
import { cfg, startApi, stop, withClient } from './helpers.ts';

type GqlResult = { data?: unknown; errors?: { message: string; path?: string[]; extensions?: { code?: string; hint?: { message: string; failed?: string[]; checks?: { check_name: string; ok: boolean }[] } } }[] };

async function gql(url: string, query: string, variables: Record<string, unknown> = {}): Promise<GqlResult> {
  const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  assert.equal(r.status, 200);
  return (await r.json()) as GqlResult;
}

const CREATE_FUND = 'mutation ($org: UUID!, $name: String!) { createFund(input: { fund: { orgId: $org, name: $name } }) { fund { rowId } } }';

describe('why denied: the API process, anonymous', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => { api = await startApi(); });
  after(async () => { await stop(api); });

  it('a query without a session gets 42501 with the sign-in hint, not a masked error', async () => {
    const r = await gql(api.url, '{ allFunds { nodes { rowId } } }');
    assert.equal(r.errors?.[0].message, 'permission denied for table funds');
    assert.deepEqual(r.errors?.[0].extensions, { code: '42501', hint: { message: GENERIC_HINT_ANONYMOUS } });
  });

  it('a mutation without a session gets the same short hint and no checks', async () => {
    const r = await gql(api.url, CREATE_FUND, { org: '00000000-0000-0000-0000-000000000001', name: 'x' });
    assert.equal(r.errors?.[0].extensions?.code, '42501');
    assert.equal(r.errors?.[0].extensions?.hint?.checks, undefined);
  });

  it('other errors are still masked', async () => {
    const r = await gql(api.url, '{ fundByRowId(rowId: "not a number") { rowId } }');
    assert.ok(r.errors?.length);
    assert.notEqual(r.errors?.[0].extensions?.code, '42501');
  });
});

describe('why denied: the API preset with signed-in visitors', () => {
  const ids = { orgA: '', orgB: '', admin: '', member: '' };
  let pool: pg.Pool;
  let server: http.Server;
  let url = '';
  let settings: Record<string, string> = {};
  let release: () => Promise<void>;

  before(async () => {
    await withClient(cfg.rootUrl, async (c) => {
      const org = async (name: string) => (await c.query<{ id: string }>('insert into app_public.organizations (name) values ($1) returning id', [name])).rows[0].id;
      const user = async (name: string) => (await c.query<{ id: string }>(
        `insert into app_public.users (email, name) values ($1 || '-' || gen_random_uuid() || '@why-denied.test', $1) returning id`, [name])).rows[0].id;
      ids.orgA = await org('why-denied A');
      ids.orgB = await org('why-denied B');
      ids.admin = await user('admin');
      ids.member = await user('member');
      await c.query(`insert into app_public.memberships (org_id, user_id, role) values ($1, $2, 'admin'), ($1, $3, 'member')`, [ids.orgA, ids.admin, ids.member]);
    });
    pool = new pg.Pool({ connectionString: cfg.authUrl, max: 2 });
    // The real preset; only the source of pgSettings differs (the future JWT middleware's job).
    const pgl = postgraphile({ extends: [makeBallastPreset({ schemas: ['app_public'], pool })], grafast: { context: () => ({ pgSettings: settings }) } });
    server = http.createServer(pgl.createServ(grafserv).createHandler());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    release = async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pgl.release();
      await pool.end();
    };
  });

  after(async () => {
    await release();
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('delete from app_public.organizations where id = any ($1)', [[ids.orgA, ids.orgB]]);
      await c.query('delete from app_public.users where id = any ($1)', [[ids.admin, ids.member]]);
      // The audit log is append-only; the superuser may bypass its triggers to tidy up after a test.
      await c.query('begin');
      await c.query(`set local session_replication_role = replica`);
      await c.query('delete from ballast.audit_log where org_id = any ($1)', [[ids.orgA, ids.orgB]]);
      await c.query('commit');
    });
  });

  const actAs = (user: string, org: string, role: 'member' | 'admin') => {
    settings = {
      role: `ballast_${role}`,
      'request.id': `why-denied-${role}`,
      'request.jwt.claims': JSON.stringify({ sub: user, org_id: org, role, exp: Math.floor(Date.now() / 1000) + 600 }),
    };
  };

  it('an admin may create a fund in their organisation (the preset works for signed-in visitors)', async () => {
    actAs(ids.admin, ids.orgA, 'admin');
    const r = await gql(url, CREATE_FUND, { org: ids.orgA, name: 'Fund ok' });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  });

  it('an admin creating a fund in another organisation gets the failed checks', async () => {
    actAs(ids.admin, ids.orgA, 'admin');
    const r = await gql(url, CREATE_FUND, { org: ids.orgB, name: 'Fund elsewhere' });
    const e = r.errors?.[0];
    assert.equal(e?.extensions?.code, '42501');
    assert.match(e?.message ?? '', /row-level security policy for table "funds"/);
    assert.deepEqual(e?.extensions?.hint?.failed, ['org match', 'policy funds_insert_admin', 'policies']);
    const byName = Object.fromEntries((e?.extensions?.hint?.checks ?? []).map((c) => [c.check_name, c.ok]));
    assert.equal(byName.session, true);
    assert.equal(byName.privilege, true);
    assert.match(e?.extensions?.hint?.message ?? '', /^Denied insert on funds: org match/);
  });

  it('a member gets the short generic hint, without the checks', async () => {
    actAs(ids.member, ids.orgA, 'member');
    const r = await gql(url, CREATE_FUND, { org: ids.orgA, name: 'Fund nope' });
    assert.deepEqual(r.errors?.[0].extensions, { code: '42501', hint: { message: GENERIC_HINT_MEMBER } });
  });

  it('a member whose token claims admin is told the admin policy fails (memberships says member)', async () => {
    actAs(ids.member, ids.orgA, 'admin');
    const r = await gql(url, CREATE_FUND, { org: ids.orgA, name: 'Fund forged' });
    const e = r.errors?.[0];
    assert.equal(e?.extensions?.code, '42501');
    // The API only knows the claim, so it asks explain_access; the database answers from memberships.
    assert.deepEqual(e?.extensions?.hint?.failed, ['policy funds_insert_admin', 'policies']);
  });
});

describe('why denied: reading the denial from the request', () => {
  it('takes table, command and row (GraphQL names back to columns) from the error and the document', () => {
    const document = parse('mutation Upd($p: FundPatch!) { renamed: updateFundByRowId(input: { rowId: 7, fundPatch: $p }) { clientMutationId } }');
    const error = new GraphQLError('x', { path: ['renamed'] });
    const d = describeDenial(error, 'new row violates row-level security policy for table "funds"', { document, variableValues: { p: { orgId: 'o', name: 'N' } }, operationName: 'Upd' });
    assert.deepEqual(d, { message: 'new row violates row-level security policy for table "funds"', table: 'funds', command: 'update', row: { id: 7, org_id: 'o', name: 'N' } });
  });

  it('a query is a select', () => {
    const d = describeDenial(new GraphQLError('x', { path: ['allFunds'] }), 'permission denied for table funds', { document: parse('{ allFunds { totalCount } }') });
    assert.equal(d.command, 'select');
    assert.equal(d.table, 'funds');
    assert.equal(d.row, null);
  });
});
