// The production API server, for real: request ids, CORS, bad input (each refused with the right 4xx
// and logged), /metrics with capped labels and database gauges, request tracing into
// ballast.performance_metrics, log redaction and probe sampling.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cfg, startApi, stop, waitFor, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Sends raw bytes over HTTP/1.1 and returns the raw response (for what fetch refuses to send). */
function rawRequest(url: string, request: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(request));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); resolve(out); });
  });
}

/** The log lines (pino JSON) the API printed that mention a text. */
function logLines(output: string, text: string): Record<string, unknown>[] {
  return output.split('\n').filter((l) => l.startsWith('{') && l.includes(text)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('api server', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await createApiFixtures();
    api = await startApi({
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000',
      BODY_LIMIT_BYTES: '10000',
      GRAPHQL_MAX_DEPTH: '5',
      GRAPHQL_MAX_COST: '500',
      GRAPHQL_DEFAULT_LIST_SIZE: '100',
      METRICS_MAX_ROUTES: '6',
      METRICS_MAX_OPERATIONS: '3',
      METRICS_DB_CACHE_MS: '0',
      PROBE_LOG_SAMPLE_RATE: '0',
      TRACE_FLUSH_MS: '100',
    });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
  });

  describe('request id', () => {
    it('keeps a well-formed X-Request-Id as the client request id: echoed in X-Client-Request-Id and logged, never request.id', async () => {
      const r = await gql(api.url, '{ nope }', { headers: { 'x-request-id': 'client-abc-123' } });
      assert.equal(r.headers.get('x-client-request-id'), 'client-abc-123');
      const id = r.headers.get('x-request-id')!;
      assert.match(id, UUID);
      await waitFor('the log line with both ids', async () => (logLines(api.output(), id).some((l) => l.clientReqId === 'client-abc-123') ? true : undefined));
    });

    it('generates a UUID when none is sent', async () => {
      const r = await gql(api.url, '{ ballastTestWhoami }');
      const id = r.headers.get('x-request-id')!;
      assert.match(id, UUID);
      assert.equal((r.body.data!.ballastTestWhoami as { requestId: string }).requestId, id);
    });

    it('refuses a forged X-Request-Id (too long, bad characters) with 400, a fresh id, and a log line', async () => {
      for (const forged of ['x'.repeat(200), 'abc def <script>', 'short']) {
        const r = await gql(api.url, '{ __typename }', { headers: { 'x-request-id': forged } });
        assert.equal(r.status, 400, forged);
        assert.equal(r.body.errors![0].extensions!.code, 'BAD_REQUEST_ID');
        const id = r.headers.get('x-request-id')!;
        assert.match(id, UUID, 'the response carries a generated id, not the forged one');
        await waitFor('the refusal in the log', async () => (logLines(api.output(), id).some((l) => JSON.stringify(l).includes('BAD_REQUEST_ID')) ? true : undefined));
      }
    });

    it('refuses a request id with control characters at the HTTP parser, with 400, logged', async () => {
      const res = await rawRequest(api.url, 'GET /health/live HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\x01defgh\r\nConnection: close\r\n\r\n');
      assert.match(res, /^HTTP\/1\.1 400/);
      await waitFor('the refusal in the log', async () => (/malformed HTTP request refused/.test(api.output()) ? true : undefined));
    });
  });

  describe('CORS', () => {
    it('answers an allowed origin with its CORS headers and a preflight with 204', async () => {
      const r = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { origin: 'https://app.example.com', 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example.com');
      assert.match(r.headers.get('access-control-expose-headers')!, /X-Request-Id/);
      const pre = await fetch(`${api.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:3000');
      assert.match(pre.headers.get('access-control-allow-headers')!, /Authorization/);
    });

    it('refuses an origin that is not in the allowlist with 403 and no CORS headers', async () => {
      for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.io', 'http://app.example.com']) {
        const r = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
        assert.equal(r.status, 403, origin);
        assert.equal(r.headers.get('access-control-allow-origin'), null);
        assert.equal(((await r.json()) as { errors: { extensions: { code: string } }[] }).errors[0].extensions.code, 'ORIGIN_NOT_ALLOWED');
      }
    });

    it('lets requests without an Origin through (servers, curl)', async () => {
      assert.equal((await gql(api.url, '{ __typename }')).status, 200);
    });
  });

  describe('bad input', () => {
    const post = (body: string, contentType = 'application/json', extra: Record<string, string> = {}) =>
      fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': contentType, ...extra }, body });

    const cases: { name: string; send: () => Promise<Response>; status: number; code: string; message: RegExp }[] = [
      { name: 'malformed JSON', send: () => post('{"query": "{ __typename }"'), status: 400, code: 'MALFORMED_JSON', message: /not valid JSON/ },
      { name: 'a JSON array body', send: () => post('[{"query": "{ __typename }"}]'), status: 400, code: 'BAD_REQUEST_BODY', message: /must be a JSON object/ },
      { name: 'an oversize body', send: () => post(JSON.stringify({ query: `{ __typename } # ${'x'.repeat(20_000)}` })), status: 413, code: 'BODY_TOO_LARGE', message: /over the limit of 10000 bytes/ },
      { name: 'an unknown content type', send: () => post('query=x', 'text/plain'), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: /"text\/plain" is not accepted/ },
      { name: 'a form post', send: () => post('query=%7B__typename%7D', 'application/x-www-form-urlencoded'), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: /not accepted/ },
      { name: 'a query deeper than GRAPHQL_MAX_DEPTH', send: () => post(JSON.stringify({ query: '{ query { query { query { query { query { query { __typename } } } } } } }' })), status: 400, code: 'QUERY_TOO_DEEP', message: /6 levels deep; the limit is 5/ },
      { name: 'a query costlier than GRAPHQL_MAX_COST', send: () => post(JSON.stringify({ query: '{ ballastTestNumbers(n: 5, first: 1000) { nodes } }' })), status: 400, code: 'QUERY_TOO_COSTLY', message: /about 2000 values; the limit is 500/ },
      { name: 'a costly query through a variable (costed at its value)', send: () => post(JSON.stringify({ query: 'query Q($n: Int) { a: ballastTestNumbers(n: 5, first: $n) { nodes } b: ballastTestNumbers(n: 5, first: $n) { nodes } c: ballastTestNumbers(n: 5, first: $n) { nodes } }', variables: { n: 100 } })), status: 400, code: 'QUERY_TOO_COSTLY', message: /about 600 values/ },
      { name: 'a costly query even with a legacy Accept header', send: () => post(JSON.stringify({ query: '{ ballastTestNumbers(n: 5, first: 1000) { nodes } }' }), 'application/json', { accept: 'application/json' }), status: 400, code: 'QUERY_TOO_COSTLY', message: /limit is 500/ },
    ];
    for (const c of cases) {
      it(`refuses ${c.name} with ${c.status}, logged with the request id`, async () => {
        const r = await c.send();
        assert.equal(r.status, c.status);
        const body = (await r.json()) as { errors: { message: string; extensions: { code: string } }[] };
        assert.equal(body.errors[0].extensions.code, c.code);
        assert.match(body.errors[0].message, c.message);
        const id = r.headers.get('x-request-id')!;
        await waitFor('the refusal in the log', async () => {
          const line = logLines(api.output(), id).find((l) => l.msg === 'request completed');
          return line && line.level === 40 && JSON.stringify(line).includes(c.code) ? true : undefined;
        });
      });
    }

    it('still serves a query within the limits', async () => {
      const r = await gql(api.url, '{ ballastTestNumbers(n: 5, first: 200) { nodes } }');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.data, { ballastTestNumbers: { nodes: [1, 2, 3, 4, 5] } });
    });
  });

  describe('metrics', () => {
    it('serves default, HTTP and GraphQL metrics, capping route and operation labels', async () => {
      for (const name of ['OpA', 'OpB', 'OpC', 'OpD', 'OpE']) await gql(api.url, `query ${name} { __typename }`);
      for (let i = 0; i < 8; i++) await fetch(`${api.url}/nothing-${i}`);
      await fetch(`${api.url}/things/123/more`);
      const text = await (await fetch(`${api.url}/metrics`)).text();
      assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');
      assert.match(text, /^http_request_duration_seconds_count\{method="POST",route="\/graphql",status="200"\} \d+/m);
      assert.match(text, /^http_request_duration_seconds_count\{method="GET",route="other",status="404"\} \d+/m, 'routes past the cap become "other"');
      const routes = new Set([...text.matchAll(/http_request_duration_seconds_count\{[^}]*route="([^"]+)"/g)].map((m) => m[1]));
      assert.ok(routes.size <= 7, `at most METRICS_MAX_ROUTES routes plus "other": ${[...routes].join(' ')}`);
      const ops = new Set([...text.matchAll(/graphql_operations_total\{operation_name="([^"]+)"/g)].map((m) => m[1]));
      assert.ok(ops.has('other'), 'operation names past the cap become "other"');
      assert.ok(ops.size <= 4, `at most METRICS_MAX_OPERATIONS names plus "other": ${[...ops].join(' ')}`);
    });

    it('reads database gauges on scrape', async () => {
      const text = await (await fetch(`${api.url}/metrics`)).text();
      assert.match(text, /^ballast_db_metrics_up 1$/m);
      assert.match(text, /^ballast_db_metrics_source_up\{source="ballast\.metrics__api\(\)"\} 1$/m);
      assert.match(text, /^ballast_rate_limit_buckets \d+$/m);
      assert.match(text, /^ballast_api_database_up 1$/m);
    });
  });

  describe('request tracing', () => {
    it('writes one row per request to ballast.performance_metrics, off the response path', async () => {
      const token = await mintToken({ role: 'member' });
      const ids = [
        (await gql(api.url, 'query TraceMe { __typename }', { token })).headers.get('x-request-id')!,
        (await gql(api.url, '{ __typename }', { headers: { 'content-type': 'text/plain' } })).headers.get('x-request-id')!,
        (await fetch(`${api.url}/health/ready`)).headers.get('x-request-id')!,
      ];
      const order = <T extends { request_id: string }>(rows: T[]) => rows.sort((a, b) => ids.indexOf(a.request_id) - ids.indexOf(b.request_id));
      const rows = await waitFor('the trace rows', () => withClient(cfg.rootUrl, async (c) => {
        const r = await c.query<{ request_id: string; status_code: number; endpoint: string; method: string; operation_name: string | null; user_id: string | null; response_time_ms: number }>(
          'select request_id, status_code, endpoint, method, operation_name, user_id::text, response_time_ms from ballast.performance_metrics where request_id = any($1) order by request_id', [ids]);
        return r.rows.length >= 2 ? order(r.rows) : undefined;
      }));
      assert.equal(rows.length, 2, 'health probes are not traced');
      assert.equal(rows[0].status_code, 200);
      assert.equal(rows[0].endpoint, '/graphql');
      assert.equal(rows[0].method, 'POST');
      assert.equal(rows[0].operation_name, 'TraceMe');
      assert.match(rows[0].user_id!, UUID);
      assert.ok(rows[0].response_time_ms >= 0);
      assert.equal(rows[1].status_code, 415);
      await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.performance_metrics where request_id = any($1)', [ids]));
    });
  });

  describe('logging', () => {
    it('redacts authorization headers and cookies', async () => {
      const token = await mintToken({ role: 'member' });
      const r = await gql(api.url, '{ __typename }', { token, headers: { cookie: 'session=secret-cookie-value' } });
      const id = r.headers.get('x-request-id')!;
      const line = await waitFor('the request line', async () => logLines(api.output(), id).find((l) => l.msg === 'request completed'));
      const text = JSON.stringify(line);
      assert.ok(!text.includes(token), 'the token is not logged');
      assert.ok(!text.includes('secret-cookie-value'), 'the cookie is not logged');
      assert.match(text, /"authorization":"\[redacted\]"/);
      assert.match(text, /"cookie":"\[redacted\]"/);
    });

    it('samples health probes (PROBE_LOG_SAMPLE_RATE=0 here) but always logs errors', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await fetch(`${api.url}/health/live`, { headers: { 'x-request-id': `probe-sample-${i}` } });
        ids.push(r.headers.get('x-request-id')!);
      }
      const r = await fetch(`${api.url}/missing-page`, { headers: { 'x-request-id': 'probe-sample-404' } });
      assert.equal(r.status, 404);
      const id404 = r.headers.get('x-request-id')!;
      await waitFor('the 404 line', async () => (logLines(api.output(), id404).length > 0 ? true : undefined));
      const logged = logLines(api.output(), 'probe-sample-').map((l) => l.reqId);
      assert.ok(logged.includes(id404));
      assert.deepEqual(ids.filter((id) => logged.includes(id)), [], 'no probe was logged');
    });
  });
});
