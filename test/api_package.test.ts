// ballast/postgraphile as a library, the two ways a user composes it outside createServer:
//   - the preset alone, served by grafserv's node adaptor with nothing in front: it still verifies the
//     JWT into role and claims (a bad token is 401, never anonymous), sets request.id and hints why denied;
//   - the middlewares in a real Express app, some mounted one by one and the whole chain as one handler,
//     with grafserv's Express adaptor after them (and Express's own JSON body parser before them).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import { postgraphile, type PostGraphileInstance } from 'postgraphile';
import { grafserv as nodeGrafserv } from 'postgraphile/grafserv/node';
import { grafserv as expressGrafserv } from 'postgraphile/grafserv/express/v4';
import { createBallast, makeBallastPreset, requestState, type Ballast, type BallastOptions } from '../api/index.ts';
import { cfg } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';

const WHOAMI = '{ ballastTestWhoami }';
type WhoAmI = { role: string; claims: string; requestId: string };
const base: BallastOptions = { schemas: ['app_public'], connectionString: cfg.authUrl, jwt: { secret: TEST_JWT_SECRET }, logLevel: 'error' };

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

before(createApiFixtures);
after(dropApiFixtures);

describe('the preset alone (grafserv node adaptor, no middlewares)', () => {
  let pgl: PostGraphileInstance;
  let server: http.Server;
  let url = '';
  before(async () => {
    pgl = postgraphile({ extends: [makeBallastPreset(base)] });
    server = http.createServer(pgl.createServ(nodeGrafserv).createHandler());
    url = await listen(server);
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pgl.release(); // the preset's own pool goes with it
  });

  it('runs a request without a token as the anonymous role, with a request id', async () => {
    const r = await gql(url, WHOAMI, { headers: { 'x-request-id': 'preset-alone-0001' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const who = r.body.data?.ballastTestWhoami as WhoAmI;
    assert.equal(who.role, 'ballast_anonymous');
    assert.match(who.requestId, /^[0-9a-f-]{36}$/, 'the id is generated, not the client\'s');
    assert.equal(r.headers.get('x-request-id'), who.requestId);
    assert.equal(r.headers.get('x-client-request-id'), 'preset-alone-0001');
  });

  it('verifies a token into the role and claims', async () => {
    const token = await mintToken({ role: 'admin' });
    const r = await gql(url, WHOAMI, { token });
    const who = r.body.data?.ballastTestWhoami as WhoAmI;
    assert.equal(who.role, 'ballast_admin');
    assert.equal(JSON.parse(who.claims).role, 'admin');
    assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('refuses a bad token with 401, never anonymous', async () => {
    const r = await gql(url, WHOAMI, { token: await mintToken({}, { secret: 'another-secret-0123456789abcdef0123456789' }) });
    assert.equal(r.status, 401);
    assert.equal(r.body.data, undefined);
    assert.equal(r.body.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  });

  it('hints why a request was denied', async () => {
    const r = await gql(url, '{ allFunds { nodes { rowId } } }');
    assert.equal(r.body.errors?.[0].extensions?.code, '42501', JSON.stringify(r.body));
  });
});

describe('the middlewares in an Express app', () => {
  let ballast: Ballast;
  let pgl: PostGraphileInstance;
  let server: http.Server;
  let url = '';
  before(async () => {
    ballast = createBallast({ ...base, rateLimit: false, tracing: false, errorReports: false, cors: { origins: ['https://app.example.com'] } });
    pgl = postgraphile({ extends: [ballast.preset] });
    const app = express();
    // A few of ballast's middlewares one by one, a route of the app's own between them, then the rest.
    const m = ballast.middlewares;
    app.use(m.requestId!, m.logging!, m.metrics!, m.health!);
    app.get('/hello', (req, res) => { res.json({ requestId: requestState(req)?.id }); });
    app.use(express.json());
    app.use(m.shutdownGuard!, m.cors!, m.body!, m.jwt!, m.dbGuard!, m.idempotency!);
    server = http.createServer(app);
    await pgl.createServ(expressGrafserv).addTo(app, server);
    url = await listen(server);
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pgl.release();
    await ballast.close();
  });

  it('answers health and metrics before Express routes, with request ids', async () => {
    const live = await fetch(`${url}/health/live`);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { live: true });
    assert.ok(live.headers.get('x-request-id'));
    const ready = await fetch(`${url}/health/ready`);
    assert.equal(ready.status, 200, await ready.text());
    const hello = await fetch(`${url}/hello`, { headers: { 'x-request-id': 'express-hello-01' } });
    assert.deepEqual(await hello.json(), { requestId: hello.headers.get('x-request-id') }, 'the app reads the request state');
    assert.equal(hello.headers.get('x-client-request-id'), 'express-hello-01');
  });

  it('serves GraphQL through Express with the JWT verified into role and claims', async () => {
    const anonymous = await gql(url, WHOAMI);
    assert.equal(anonymous.status, 200, JSON.stringify(anonymous.body));
    assert.equal((anonymous.body.data?.ballastTestWhoami as WhoAmI).role, 'ballast_anonymous');
    const member = await gql(url, WHOAMI, { token: await mintToken({ role: 'member' }), headers: { 'x-request-id': 'express-member-01' } });
    const who = member.body.data?.ballastTestWhoami as WhoAmI;
    assert.equal(who.role, 'ballast_member');
    assert.equal(who.requestId, member.headers.get('x-request-id'));
    const bad = await gql(url, WHOAMI, { token: 'not.a.token' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
  });

  it('refuses what the checks refuse: a foreign origin, an unknown content type', async () => {
    const foreign = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example.com' }, body: '{"query":"{ __typename }"}' });
    assert.equal(foreign.status, 403);
    const text = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{ __typename }' });
    assert.equal(text.status, 415);
  });

  it('counts the requests on /metrics', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.match(text, /http_request_duration_seconds_count\{method="POST",route="\/graphql",status="200"\} \d+/);
    assert.match(text, /graphql_operations_total/);
  });

  it('the whole chain as one handler', async () => {
    const app = express();
    const other = createBallast({ ...base, rateLimit: false, tracing: false, errorReports: false });
    const otherPgl = postgraphile({ extends: [other.preset] });
    app.use(other.handler);
    const s = http.createServer(app);
    await otherPgl.createServ(expressGrafserv).addTo(app, s);
    const u = await listen(s);
    try {
      const r = await gql(u, WHOAMI, { token: await mintToken({ role: 'admin' }) });
      assert.equal((r.body.data?.ballastTestWhoami as WhoAmI).role, 'ballast_admin', JSON.stringify(r.body));
      assert.ok(r.headers.get('x-request-id'));
      assert.equal((await fetch(`${u}/health/live`)).status, 200);
    } finally {
      await new Promise<void>((resolve) => s.close(() => resolve()));
      await otherPgl.release();
      await other.close();
    }
  });
});
