// Async error tracking, for real: a database-internal error becomes a 500 (nothing leaked), the
// response does not wait, a ballast_report_error job is queued, and the worker posts it to ERROR_REPORT_URL,
// retrying when the endpoint fails. Also: statement_timeout → 504.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { cfg, freePort, startApi, startWorker, stop, waitFor, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';

describe('api error reports', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  let sink: http.Server;
  let sinkUrl: string;
  const received: { status: number; body: Record<string, unknown> }[] = [];
  let failNext = 1; // the sink answers 500 this many times first
  let boomId = ''; // the request id of the first test's 500

  before(async () => {
    await createApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast_worker._private_jobs j using ballast_worker._private_tasks t
      where t.id = j.task_id and t.identifier = 'ballast_report_error'`));
    sink = http.createServer((req, res) => {
      let text = '';
      req.on('data', (d) => { text += d; });
      req.on('end', () => {
        const status = failNext > 0 ? 500 : 204;
        if (failNext > 0) failNext -= 1;
        received.push({ status, body: JSON.parse(text) as Record<string, unknown> });
        res.writeHead(status).end();
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => sink.listen(port, '127.0.0.1', resolve));
    sinkUrl = `http://127.0.0.1:${port}/errors`;
    api = await startApi({ DB_STATEMENT_TIMEOUT_MS: '1000' });
  });
  after(async () => {
    await stop(api);
    await new Promise((resolve) => sink.close(resolve));
    await dropApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast_worker._private_jobs j using ballast_worker._private_tasks t
      where t.id = j.task_id and t.identifier = 'ballast_report_error'`));
  });

  it('answers a database-internal error with 500, leaking nothing, and queues a ballast_report_error job', async () => {
    const r = await gql(api.url, 'query Boom { ballastTestFail(sqlstate: "XX000") }');
    assert.equal(r.status, 500);
    boomId = r.headers.get('x-request-id')!;
    assert.deepEqual(r.body.errors, [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: boomId } }]);
    assert.doesNotMatch(JSON.stringify(r.body), /ballast test failure/);
    const job = await waitFor('the ballast_report_error job', () => withClient(cfg.rootUrl, async (c) => (await c.query<{ payload: Record<string, unknown> }>(
      `select j.payload from ballast_worker._private_jobs j join ballast_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'ballast_report_error' and j.payload->>'first_request_id' = $1`, [boomId])).rows[0]));
    assert.equal(job.payload.status, 500);
    assert.equal(job.payload.code, 'INTERNAL_SERVER_ERROR');
    assert.equal(job.payload.operation_name, 'Boom');
    assert.match(String(job.payload.message), /ballast test failure XX000/, 'the report has the detail the client did not get');
  });

  it('answers statement_timeout with 504 and reports it; a 4xx is not reported', async () => {
    const r = await gql(api.url, '{ ballastTestSleep(ms: 3000) }');
    const id = r.headers.get('x-request-id')!;
    assert.equal(r.status, 504);
    assert.equal(r.body.errors![0].extensions!.code, 'STATEMENT_TIMEOUT');
    assert.equal((await gql(api.url, '{ nope }')).status, 400);
    await waitFor('the 504 report', () => withClient(cfg.rootUrl, async (c) => (await c.query(
      `select 1 from ballast_worker._private_jobs where payload->>'first_request_id' = $1`, [id])).rows[0]));
    const count = await withClient(cfg.rootUrl, async (c) => (await c.query<{ n: number }>(
      `select count(*)::int as n from ballast_worker._private_jobs j join ballast_worker._private_tasks t on t.id = j.task_id where t.identifier = 'ballast_report_error'`)).rows[0].n);
    assert.equal(count, 2, 'one job per 5xx, none for the 400');
  });

  it('the worker posts the report to ERROR_REPORT_URL and retries when it fails', async () => {
    const worker = startWorker({ ERROR_REPORT_URL: sinkUrl, LOG_LEVEL: 'warn' });
    try {
      await waitFor('both reports delivered, the first after one retry', async () => (received.filter((x) => x.status === 204).length >= 2 ? true : undefined), 30_000);
      const boom = received.filter((x) => x.body.first_request_id === boomId);
      assert.ok(boom.length >= 1 && boom.at(-1)!.status === 204, 'delivered');
      const first = received[0];
      assert.equal(first.status, 500, 'the first post failed');
      assert.ok(received.filter((x) => x.body.first_request_id === first.body.first_request_id).length >= 2, 'and was retried');
      assert.equal(received.at(-1)!.body.source, 'ballast-api');
      await waitFor('the jobs to be done', () => withClient(cfg.rootUrl, async (c) => ((await c.query(
        `select 1 from ballast_worker._private_jobs j join ballast_worker._private_tasks t on t.id = j.task_id where t.identifier = 'ballast_report_error'`)).rowCount === 0 ? true : undefined)));
    } finally {
      assert.equal(await stop(worker), 0, worker.output());
    }
  });
});
