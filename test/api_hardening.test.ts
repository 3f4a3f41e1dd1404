// Issue 16, the API's hardening: each test fails on the code before the fix.
//   - /health/ready asks the database at most once a second and never echoes its error text
//   - the worker's error reporter does not follow redirects
//   - a client's X-Request-Id is not the request's id
//   - X-Forwarded-For counts only from a peer in TRUSTED_PROXIES
//   - a request's why-denied hints cost at most WHY_DENIED_MAX_QUERIES round trips
//   - only ALLOWED_HOSTS are served (421), and the same-origin CORS exemption needs one
//   - an idempotency key's replay belongs to one subject, organisation and role (or client address)
//   - GraphQL cost with the request's variables, bounded pages, counted (and switchable) introspection
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import pino from 'pino';
import { clientAddress, proxyTrust } from '../api/client_address.ts';
import { health } from '../api/middleware/health.ts';
import { toNodeMiddleware } from '../api/middleware/node.ts';
import { cfg, startApi, stop, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';

/** A local HTTP server for one test; resolves to its base URL. */
async function listen(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A pino logger that keeps its lines in `lines`. */
function memoryLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { logger, lines };
}

describe('/health/ready under load and failure', () => {
  const secret = 'password authentication failed for user "ballast_authenticator" at db-7.internal:5432';
  let queries = 0;
  let failing = true;
  const pool = {
    query: async () => {
      queries += 1;
      await new Promise((r) => setTimeout(r, 20));
      if (failing) throw new Error(secret);
      return { rows: [{ applied: null, installed: null }] };
    },
  } as unknown as pg.Pool;
  const { logger, lines } = memoryLogger();
  let server: Awaited<ReturnType<typeof listen>>;
  before(async () => {
    const mw = toNodeMiddleware(health(pool, () => false, { readyCacheMs: 1000, logger }));
    server = await listen((req, res) => mw(req, res, () => { res.writeHead(404).end(); }));
  });
  after(() => server.close());

  it('queries the database at most once per second however many probes ask, and echoes none of its error text', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/health/ready`)));
    for (let i = 0; i < 10; i++) answers.push(await fetch(`${server.url}/health/ready`));
    const bodies = await Promise.all(answers.map((r) => r.text()));
    assert.ok(answers.every((r) => r.status === 503));
    assert.ok(queries <= 2, `30 probes within a second made ${queries} readiness queries`);
    for (const b of bodies) assert.doesNotMatch(b, /password|ballast_authenticator|db-7/, `the probe's answer leaks the database error: ${b}`);
    assert.ok(lines.some((l) => l.detail === secret), 'the detail is in the log');
    failing = false;
    await new Promise((r) => setTimeout(r, 1100));
    const again = await fetch(`${server.url}/health/ready`);
    const body = await again.json() as { checks: Record<string, string> };
    assert.equal(body.checks.database, 'ok', 'after the cache expires the database is asked again');
  });
});

describe('the error reporter (worker/tasks/report_error.ts)', () => {
  it('does not follow a redirect: the report reaches only ERROR_REPORT_URL', async () => {
    const elsewhere: string[] = [];
    const target = await listen((req, res) => { elsewhere.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`); req.resume(); res.writeHead(204).end(); });
    const sink = await listen((req, res) => { req.resume(); res.writeHead(307, { location: `${target.url}/stolen` }).end(); });
    const { configureErrorReports, report_error } = await import('../worker/tasks/report_error.ts');
    const logged: string[] = [];
    const log = (m: string) => { logged.push(m); };
    const helpers = { job: { attempts: 1 }, abortSignal: new AbortController().signal, logger: { error: log, warn: log, info: log, debug: log } };
    try {
      configureErrorReports({ url: `${sink.url}/errors`, timeoutMs: 2000 });
      await (report_error as (p: unknown, h: unknown) => Promise<void>)({ status: 500, code: 'INTERNAL_SERVER_ERROR' }, helpers);
      assert.deepEqual(elsewhere, [], 'the report was posted where the redirect pointed');
      assert.ok(logged.some((m) => /307/.test(m) && /redirect/i.test(m)), `the redirect is logged: ${logged.join('\n')}`);
    } finally {
      await Promise.all([sink.close(), target.close()]);
    }
  });
});

describe('request ids are the server\'s', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await createApiFixtures();
    api = await startApi();
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
  });

  it('a client\'s X-Request-Id never becomes request.id (audit_log.request_id): it is echoed apart, in X-Client-Request-Id', async () => {
    const r = await gql(api.url, '{ ballastTestWhoami }', { headers: { 'x-request-id': 'client-chosen-0001' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const seen = (r.body.data!.ballastTestWhoami as { requestId: string }).requestId;
    assert.notEqual(seen, 'client-chosen-0001', 'the client chose the request id the database records');
    assert.match(seen, /^[0-9a-f-]{36}$/);
    assert.equal(r.headers.get('x-request-id'), seen, 'X-Request-Id is the id the database saw');
    assert.equal(r.headers.get('x-client-request-id'), 'client-chosen-0001');
  });
});

describe('X-Forwarded-For only from trusted proxies', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  const bucket = 'mutation:ip:127.0.0.1';
  before(async () => {
    await createApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.rate_limit_buckets where bucket = $1', [bucket]));
    // This test's requests come from 127.0.0.1, which is not one of the proxies.
    api = await startApi({ RATE_LIMIT_MUTATION: '2:0.001', TRUST_PROXY_HOPS: '1', TRUSTED_PROXIES: '10.0.0.0/8' });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.rate_limit_buckets where bucket = $1', [bucket]));
  });

  it('a peer outside TRUSTED_PROXIES cannot pick its rate-limit bucket with X-Forwarded-For', async () => {
    const statuses: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const r = await gql(api.url, 'mutation { ballastTestTouch(input: {}) { result } }', { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses, [200, 200, 429], 'three forged addresses from one untrusted peer share its bucket of 2');
  });

  it('walks X-Forwarded-For only through trusted hops', () => {
    const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
    const two = proxyTrust(2, ['10.0.0.0/8', 'fd00::/8']);
    assert.equal(clientAddress(req('10.1.1.1', '203.0.113.5, 10.2.2.2'), two), '203.0.113.5', 'two trusted hops');
    assert.equal(clientAddress(req('10.1.1.1', '203.0.113.5, 192.0.2.66'), two), '192.0.2.66', 'the second hop is not a proxy: it is the client');
    assert.equal(clientAddress(req('192.0.2.1', '203.0.113.5, 10.2.2.2'), two), '192.0.2.1', 'an untrusted peer is the client');
    assert.equal(clientAddress(req('::ffff:10.1.1.1', '203.0.113.5, fd00::2'), two), '203.0.113.5', 'IPv4-mapped and IPv6 proxies');
    assert.equal(clientAddress(req('10.1.1.1'), two), '10.1.1.1', 'no header: the peer');
  });
});

describe('why-denied hints are capped per request', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  const ids = { orgA: '', orgB: '', admin: '' };
  before(async () => {
    await withClient(cfg.rootUrl, async (c) => {
      const org = async (name: string) => (await c.query<{ id: string }>('insert into app_public.organizations (name) values ($1) returning id', [name])).rows[0].id;
      ids.orgA = await org('hint cap A');
      ids.orgB = await org('hint cap B');
      ids.admin = (await c.query<{ id: string }>(`insert into app_public.users (email, name) values ('admin-' || gen_random_uuid() || '@hint-cap.test', 'admin') returning id`)).rows[0].id;
      await c.query(`insert into app_public.memberships (org_id, user_id, role) values ($1, $2, 'admin')`, [ids.orgA, ids.admin]);
    });
    api = await startApi({ JWT_SECRET: TEST_JWT_SECRET });
  });
  after(async () => {
    await stop(api);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('delete from app_public.organizations where id = any ($1)', [[ids.orgA, ids.orgB]]);
      await c.query('delete from app_public.users where id = $1', [ids.admin]);
      await c.query('begin');
      await c.query('set local session_replication_role = replica'); // the audit log is append-only
      await c.query('delete from ballast.audit_log where org_id = any ($1)', [[ids.orgA, ids.orgB]]);
      await c.query('commit');
    });
  });

  it('six aliased denied mutations get explain_access checks for at most three (WHY_DENIED_MAX_QUERIES)', async () => {
    const token = await mintToken({ sub: ids.admin, org_id: ids.orgA, role: 'admin' });
    const fields = Array.from({ length: 6 }, (_, i) => `f${i}: createFund(input: { fund: { orgId: $org, name: "elsewhere ${i}" } }) { fund { rowId } }`);
    const r = await gql(api.url, `mutation ($org: UUID!) { ${fields.join(' ')} }`, { token, variables: { org: ids.orgB } });
    const errors = r.body.errors ?? [];
    assert.equal(errors.length, 6, JSON.stringify(r.body));
    assert.ok(errors.every((e) => e.extensions?.code === '42501' && e.extensions.hint), 'every denial has a hint');
    const explained = errors.filter((e) => (e.extensions!.hint as { checks?: unknown[] }).checks !== undefined);
    assert.equal(explained.length, 3, `explained ${explained.length} of 6 denials`);
    const rest = errors.filter((e) => (e.extensions!.hint as { checks?: unknown[] }).checks === undefined);
    assert.ok(rest.every((e) => /not explained/.test((e.extensions!.hint as { message: string }).message)));
  });
});

/** A request with a Host header of our choosing (fetch does not let one set it). */
function withHost(url: string, path: string, host: string, opts: { method?: string; body?: string; origin?: string } = {}): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: {
      host, ...(opts.origin ? { origin: opts.origin } : {}), ...(opts.body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(opts.body) } : {}),
    } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('DNS rebinding: only allowed hosts are served', () => {
  const query = JSON.stringify({ query: '{ __typename }' });

  it('by default only loopback names are served: a rebound name gets 421, not the same-origin exemption', async () => {
    const api = await startApi();
    try {
      const port = new URL(api.url).port;
      const rebound = `rebind.attacker.example:${port}`;
      assert.equal(await withHost(api.url, '/graphql', rebound, { method: 'POST', body: query, origin: `http://${rebound}` }), 421);
      assert.equal(await withHost(api.url, '/graphql', `localhost:${port}`, { method: 'POST', body: query, origin: `http://localhost:${port}` }), 200);
      assert.equal(await withHost(api.url, '/graphql', `127.0.0.1:${port}`, { method: 'POST', body: query }), 200);
    } finally {
      await stop(api);
    }
  });

  it('with ALLOWED_HOSTS, other hosts get 421; probes are served whatever the Host', async () => {
    const api = await startApi({ ALLOWED_HOSTS: 'api.example.com, 127.0.0.1' });
    try {
      assert.equal(await withHost(api.url, '/graphql', 'API.example.com', { method: 'POST', body: query }), 200);
      assert.equal(await withHost(api.url, '/graphql', 'intranet.example.com', { method: 'POST', body: query }), 421);
      assert.equal(await withHost(api.url, '/health/ready', '10.1.2.3:5678'), 200);
      assert.equal(await withHost(api.url, '/graphql', 'localhost', { method: 'POST', body: query }), 421, 'the list replaces the loopback default');
    } finally {
      await stop(api);
    }
  });
});

describe('idempotency keys are scoped to subject, organisation and role', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  const run = `h16-${randomUUID().slice(0, 8)}`;
  const TOUCH = 'mutation { ballastTestTouch(input: {}) { result } }';
  before(async () => {
    await createApiFixtures();
    api = await startApi({ JWT_SECRET: TEST_JWT_SECRET, TRUST_PROXY_HOPS: '1', TRUSTED_PROXIES: '127.0.0.0/8, ::1' });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query("delete from ballast.idempotency_keys where key like $1 || '%'", [run]));
  });

  it('a replay under another organisation\'s or role\'s token, or from another client address, is not the stored response', async () => {
    const sub = randomUUID();
    const [orgA, orgB] = [randomUUID(), randomUUID()];
    const as = async (claims: Record<string, string>, key: string) => gql(api.url, TOUCH, { token: await mintToken({ sub, ...claims }), headers: { 'idempotency-key': key } });
    const replayed = (r: { headers: Headers }) => r.headers.get('idempotent-replayed') === 'true';
    const key = `${run}-org`;
    assert.equal(replayed(await as({ org_id: orgA, role: 'admin' }, key)), false);
    assert.equal(replayed(await as({ org_id: orgA, role: 'admin' }, key)), true, 'the same identity gets its replay');
    assert.equal(replayed(await as({ org_id: orgB, role: 'admin' }, key)), false, 'another organisation\'s token: not that replay');
    assert.equal(replayed(await as({ org_id: orgA, role: 'member' }, key)), false, 'another role: not that replay');
    // anonymous: the client address behind the trusted proxy, as the rate limiter keys it
    const anon = (xff: string) => gql(api.url, TOUCH, { headers: { 'idempotency-key': `${run}-anon`, 'x-forwarded-for': xff } });
    assert.equal(replayed(await anon('198.51.100.1')), false);
    assert.equal(replayed(await anon('198.51.100.1')), true);
    assert.equal(replayed(await anon('198.51.100.2')), false, 'another client behind the proxy: not that replay');
  });
});

describe('GraphQL cost is per request; pages are bounded; introspection counts', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  let strict: Awaited<ReturnType<typeof startApi>>;
  const nodes = (r: { body: { data?: Record<string, unknown> } }, field = 'ballastTestNumbers') => ((r.body.data?.[field] as { nodes: number[] }).nodes.length);
  before(async () => {
    await createApiFixtures();
    api = await startApi({ GRAPHQL_DEFAULT_PAGE_SIZE: '50' });
    strict = await startApi({ GRAPHQL_INTROSPECTION: 'off', GRAPHQL_MAX_COST: '5000' });
  });
  after(async () => {
    await stop(api);
    await stop(strict);
    await dropApiFixtures();
  });

  it('first: $n is costed at its value: 10^7 is refused, not costed as 100', async () => {
    const r = await gql(api.url, 'query ($n: Int) { ballastTestNumbers(n: 3, first: $n) { nodes } }', { variables: { n: 10_000_000 } });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.errors![0].extensions!.code, 'PAGE_TOO_LARGE');
    const many = 'query ($n: Int) { a: ballastTestNumbers(n: 5, first: $n) { nodes } b: ballastTestNumbers(n: 5, first: $n) { nodes } c: ballastTestNumbers(n: 5, first: $n) { nodes } }';
    const costly = await gql(strict.url, many, { variables: { n: 900 } });
    assert.equal(costly.status, 400, JSON.stringify(costly.body));
    assert.equal(costly.body.errors![0].extensions!.code, 'QUERY_TOO_COSTLY');
    assert.match(costly.body.errors![0].message, /about 5400 values/);
    assert.equal((await gql(strict.url, many, { variables: { n: 10 } })).status, 200);
  });

  it('a connection without first/last, or with a null first, gets GRAPHQL_DEFAULT_PAGE_SIZE rows', async () => {
    const unpaged = await gql(api.url, '{ ballastTestNumbers(n: 300) { nodes } }');
    assert.equal(unpaged.status, 200, JSON.stringify(unpaged.body));
    assert.equal(nodes(unpaged), 50);
    const nullFirst = await gql(api.url, 'query ($n: Int) { ballastTestNumbers(n: 300, first: $n) { nodes } }', { variables: { n: null } });
    assert.equal(nodes(nullFirst), 50);
    const asked = await gql(api.url, '{ ballastTestNumbers(n: 300, first: 120) { nodes } }');
    assert.equal(nodes(asked), 120, 'an explicit first is kept');
    const fragment = await gql(api.url, 'query { ...Q } fragment Q on Query { ballastTestNumbers(n: 300) { nodes } }');
    assert.equal(nodes(fragment), 50, 'inside fragments too');
  });

  it('aliased introspection is counted, and GRAPHQL_INTROSPECTION=off refuses it', async () => {
    const aliased = `{ ${Array.from({ length: 6 }, (_, i) => `a${i}: __schema { queryType { name } }`).join(' ')} }`;
    const r = await gql(api.url, aliased);
    assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
    assert.equal(r.body.errors![0].extensions!.code, 'QUERY_TOO_COSTLY');
    assert.equal((await gql(api.url, '{ __schema { queryType { name } } }')).status, 200, 'one introspection is fine');
    const off = await gql(strict.url, '{ __schema { queryType { name } } }');
    assert.equal(off.status, 400, JSON.stringify(off.body));
    assert.equal(off.body.errors![0].extensions!.code, 'INTROSPECTION_DISABLED');
    assert.equal((await gql(strict.url, '{ __typename }')).status, 200, '__typename is not introspection');
  });
});
