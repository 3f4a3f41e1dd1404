// W3C trace context, for real (issue 18): the API accepts and returns `traceparent` (a new trace when it
// is absent or malformed); the trace id is on the request's log lines, its ballast.performance_metrics
// row, its error report and the ballast_report_error job it queued, whose worker log lines continue the
// trace. With OTEL_EXPORTER_OTLP_ENDPOINT set, a local OTLP/HTTP receiver (started here, decoding the
// JSON export requests) receives the API's request, operation and transaction spans and the worker's
// task span, all of one trace id. The per-request row is sampled (REQUEST_TRACING_SAMPLE) but kept for
// 5xx and slow requests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { cfg, freePort, startApi, startNode, stop, waitFor, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { parseTraceparent, sampledByTraceId } from '../api/trace_context.ts';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const startWorker = (env: Record<string, string> = {}) => startNode('example/worker.ts', { WORKER_DATABASE_URL: cfg.ownerUrl, LOG_LEVEL: 'info', ...env });

type LogLine = Record<string, unknown>;
const lines = (output: string): LogLine[] => output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

const clearReportJobs = () => withClient(cfg.rootUrl, (c) => c.query(`delete from ballast_worker._private_jobs j using ballast_worker._private_tasks t
  where t.id = j.task_id and t.identifier = 'ballast_report_error'`));

async function metricsRow(requestId: string): Promise<{ trace_id: string | null; status_code: number } | undefined> {
  return withClient(cfg.rootUrl, async (c) => (await c.query<{ trace_id: string | null; status_code: number }>(
    'select trace_id, status_code from ballast.performance_metrics where request_id = $1', [requestId])).rows[0]);
}

type OtlpSpan = { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: { key: string; value: Record<string, unknown> }[]; status?: { code?: number } };

/** A loopback OTLP/HTTP receiver: POST /v1/traces with the JSON encoding; keeps every span with its service name. */
async function otlpReceiver(): Promise<{ url: string; spans: (OtlpSpan & { service: string })[]; requests: { path: string; contentType: string }[]; close: () => Promise<void> }> {
  const spans: (OtlpSpan & { service: string })[] = [];
  const requests: { path: string; contentType: string }[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => { text += d; });
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: String(req.headers['content-type']) });
      if (req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(text) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, spans, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('trace context', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await createApiFixtures();
    await clearReportJobs();
    api = await startApi({ LOG_LEVEL: 'info', TRACE_FLUSH_MS: '50' });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
    await clearReportJobs();
  });

  it('continues a valid traceparent: same trace id in the response, its log line and its performance_metrics row', async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const r = await gql(api.url, 'query Traced { __typename }', { headers: { traceparent: `00-${traceId}-${parent}-01` } });
    assert.equal(r.status, 200);
    const back = parseTraceparent(r.headers.get('traceparent') ?? undefined);
    assert.ok(back, `a well-formed traceparent comes back, got ${r.headers.get('traceparent')}`);
    assert.equal(back.traceId, traceId, 'the caller\'s trace continues');
    assert.notEqual(back.parentSpanId, parent, 'the span id returned is the API\'s own span, not the caller\'s');
    assert.equal(back.flags, 1, 'the sampled flag is kept');
    const requestId = r.headers.get('x-request-id')!;
    const line = await waitFor('the request\'s log line', async () => lines(api.output()).find((l) => l.reqId === requestId));
    assert.equal(line.traceId, traceId, JSON.stringify(line));
    const row = await waitFor('its performance_metrics row', () => metricsRow(requestId));
    assert.equal(row.trace_id, traceId);
  });

  it('makes a new trace when traceparent is absent or malformed', async () => {
    const given = hex(16);
    const seen = new Set<string>();
    for (const header of [undefined, `00-${given.toUpperCase()}-${hex(8)}-01`, `00-${'0'.repeat(32)}-${hex(8)}-01`, `00-${given}-${'0'.repeat(16)}-01`,
      `ff-${given}-${hex(8)}-01`, `00-${given}-${hex(8)}-01-extra`, 'garbage']) {
      const r = await gql(api.url, '{ __typename }', { headers: header === undefined ? {} : { traceparent: header } });
      assert.equal(r.status, 200, `a bad traceparent is no reason to refuse the request (${header})`);
      const back = parseTraceparent(r.headers.get('traceparent') ?? undefined);
      assert.ok(back, `a new well-formed traceparent for ${header}`);
      assert.notEqual(back.traceId, given, `not the malformed header's id (${header})`);
      seen.add(back.traceId);
    }
    assert.equal(seen.size, 7, 'a new trace id each time');
    // a later version's header is read by its first four fields (W3C trace context, "versioning")
    const traceId = hex(16);
    const r = await gql(api.url, '{ __typename }', { headers: { traceparent: `01-${traceId}-${hex(8)}-00-future` } });
    assert.equal(parseTraceparent(r.headers.get('traceparent') ?? undefined)?.traceId, traceId);
  });

  it('puts the trace id in the error report and the worker continues the trace in its log lines', async () => {
    const traceId = hex(16);
    const r = await gql(api.url, 'query TracedBoom { ballastTestFail(sqlstate: "XX000") }', { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    assert.equal(r.status, 500);
    const apiSpan = parseTraceparent(r.headers.get('traceparent') ?? undefined)!.parentSpanId;
    const requestId = r.headers.get('x-request-id')!;
    const job = await waitFor('the ballast_report_error job', () => withClient(cfg.rootUrl, async (c) => (await c.query<{ payload: Record<string, unknown> }>(
      `select j.payload from ballast_worker._private_jobs j join ballast_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'ballast_report_error' and j.payload->>'first_request_id' = $1`, [requestId])).rows[0]));
    assert.equal(job.payload.first_trace_id, traceId);
    assert.equal(job.payload.last_trace_id, traceId);
    assert.equal(job.payload.traceparent, `00-${traceId}-${apiSpan}-01`, 'the job carries the request\'s own span as parent');
    const errorLine = await waitFor('the API\'s error line', async () => lines(api.output()).find((l) => l.reqId === requestId && l.level === 50));
    assert.equal(errorLine.traceId, traceId);
    assert.equal((await waitFor('the row', () => metricsRow(requestId))).trace_id, traceId);

    const worker = startWorker();
    try {
      const report = await waitFor('the worker\'s report line', async () => lines(worker.output()).find((l) => typeof l.msg === 'string' && l.msg.includes(requestId)), 30_000);
      assert.equal(report.traceId, traceId, JSON.stringify(report));
      assert.match(String(report.spanId), /^[0-9a-f]{16}$/, 'the task\'s own span id');
      assert.notEqual(report.spanId, apiSpan);
      assert.equal(report.taskIdentifier ?? report.task, 'ballast_report_error');
    } finally {
      await stop(worker);
    }
  });
});

describe('request row sampling (REQUEST_TRACING_SAMPLE)', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await createApiFixtures();
    api = await startApi({ REQUEST_TRACING_SAMPLE: '0.5', REQUEST_TRACING_SLOW_MS: '300', TRACE_FLUSH_MS: '50', ERROR_REPORTING: 'off' });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
  });

  it('writes the rows of sampled trace ids, of 5xx responses and of slow requests, and no others', async () => {
    const inSample = `${hex(12)}00000000`; // its last 8 hex digits as a fraction: 0 < 0.5
    const outOfSample = `${hex(12)}ffffffff`; // ~1 ≥ 0.5
    assert.ok(sampledByTraceId(inSample, 0.5) && !sampledByTraceId(outOfSample, 0.5));
    const send = async (traceId: string, query: string) => {
      const r = await gql(api.url, query, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
      return { status: r.status, id: r.headers.get('x-request-id')! };
    };
    const skipped = await send(outOfSample, '{ __typename }');
    const failed = await send(`${hex(12)}fffffffe`, '{ ballastTestFail(sqlstate: "XX000") }');
    const slow = await send(`${hex(12)}fffffffd`, '{ ballastTestSleep(ms: 400) }');
    const kept = await send(inSample, '{ __typename }');
    assert.deepEqual([skipped.status, failed.status, slow.status, kept.status], [200, 500, 200, 200]);
    // rows are written in arrival order: once the last one is there, the others would be too
    await waitFor('the sampled row', () => metricsRow(kept.id));
    assert.equal((await metricsRow(failed.id))?.status_code, 500, 'a 5xx is always written');
    assert.ok(await metricsRow(slow.id), 'a request of at least REQUEST_TRACING_SLOW_MS is always written');
    assert.equal(await metricsRow(skipped.id), undefined, 'a fast 200 outside the sample is not written');
  });
});

describe('OpenTelemetry export (OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let api: Awaited<ReturnType<typeof startApi>>;
  let worker: ReturnType<typeof startWorker>;
  before(async () => {
    await createApiFixtures();
    await clearReportJobs();
    receiver = await otlpReceiver();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
    api = await startApi({ ...otel, OTEL_SERVICE_NAME: 'ballast-api-test' });
    worker = startWorker(otel);
  });
  after(async () => {
    await stop(api);
    await stop(worker);
    await receiver.close();
    await dropApiFixtures();
    await clearReportJobs();
  });

  it('exports the request\'s, operation\'s, transaction\'s and worker task\'s spans with one trace id', async () => {
    const traceId = hex(16);
    const caller = hex(8);
    const r = await gql(api.url, 'query OtelBoom { ballastTestFail(sqlstate: "XX000") }', { headers: { traceparent: `00-${traceId}-${caller}-01` } });
    assert.equal(r.status, 500);
    const back = parseTraceparent(r.headers.get('traceparent') ?? undefined)!;
    assert.equal(back.traceId, traceId);
    const spans = await waitFor('the API\'s and the worker\'s spans', async () => {
      const mine = receiver.spans.filter((s) => s.traceId === traceId);
      return mine.some((s) => s.service === 'ballast-worker') && mine.some((s) => s.name === 'pg transaction') ? mine : undefined;
    }, 30_000);
    const byName = (name: string) => spans.find((s) => s.name === name);
    const request = byName('POST /graphql');
    const operation = byName('query OtelBoom');
    const transaction = byName('pg transaction');
    const task = byName('task ballast_report_error');
    assert.ok(request && operation && transaction && task, spans.map((s) => `${s.service}: ${s.name}`).join(', '));
    assert.equal(request.service, 'ballast-api-test');
    assert.equal(task.service, 'ballast-worker');
    assert.equal(request.spanId, back.parentSpanId, 'the response\'s traceparent names the request\'s span');
    assert.equal(request.parentSpanId, caller, 'the request span is a child of the caller\'s');
    assert.equal(request.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(operation.parentSpanId, request.spanId);
    assert.equal(transaction.parentSpanId, operation.spanId);
    assert.equal(task.parentSpanId, request.spanId, 'the worker\'s task continues the request\'s span');
    assert.equal(request.status?.code, 2, 'a 500 is an error span');
    assert.ok(receiver.requests.every((q) => q.path === '/v1/traces' && q.contentType.startsWith('application/json')));
  });
});
