// ballast/worker, for real: the example's worker process (built from the package's public names) runs a
// queued job, records its heartbeat and stops on SIGTERM; its environment is checked at startup; the task
// names the kit's SQL queues are the ones the task list runs; and ballast's tasks merged into an app's own
// graphile-worker runner, in the app's own schema, run the jobs the kit queues there (setting worker_schema).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseCrontab, run as runGraphileWorker, type Runner } from 'graphile-worker';
import { DELIVER_JOB_KEY, TASKS, crontab, pinoWorkerLogger, run, stopDeliveryPolling, taskList } from '../worker/index.ts';
import { cfg, startNode, stop, waitFor, withClient } from './helpers.ts';

const startWorker = (env: Record<string, string> = {}) => startNode('example/worker.ts', { WORKER_DATABASE_URL: cfg.ownerUrl, ...env });

it('the example worker runs a queued ballast_heartbeat job and exits 0 on SIGTERM', async () => {
  await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.worker_heartbeats'));
  const worker = startWorker({ LOG_LEVEL: 'info' });
  await withClient(cfg.rootUrl, (c) => c.query(`select ballast_worker.add_job($1)`, [TASKS.heartbeat]));
  const row = await waitFor('a heartbeat row', () => withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ pid: number }>('select pid from ballast.worker_heartbeats')).rows[0]));
  assert.equal(row.pid, worker.proc.pid);
  await waitFor('the worker to log that it runs', async () => (/worker running/.test(worker.output()) ? true : undefined));
  assert.match(worker.output(), /"schema":"ballast_worker"/, 'in ballast\'s own graphile-worker schema by default');
  assert.equal(await stop(worker), 0, worker.output());
});

it('the example worker stops at startup on a bad environment, naming every bad variable', async () => {
  const bad = startWorker({ WORKER_CONCURRENCY: '0', INVALIDATION_SINKS: 'carrier-pigeon', LOG_LEVEL: 'loud' });
  assert.equal(await bad.exited, 2, bad.output());
  for (const name of ['WORKER_CONCURRENCY', 'INVALIDATION_SINKS', 'LOG_LEVEL']) assert.match(bad.output(), new RegExp(name), bad.output());
  const none = startNode('example/worker.ts', { WORKER_DATABASE_URL: '', DATABASE_URL: '' });
  assert.equal(await none.exited, 2, none.output());
  assert.match(none.output(), /WORKER_DATABASE_URL \(or DATABASE_URL\) must be set: .*direct or session-mode/);
});

it('taskList, crontab and the kit\'s SQL agree on the namespaced task names', async () => {
  assert.deepEqual(Object.keys(taskList).sort(), Object.values(TASKS).sort());
  assert.ok(Object.keys(taskList).every((t) => t.startsWith('ballast_')), Object.keys(taskList).join(' '));
  const items = parseCrontab(crontab);
  assert.deepEqual(items.map((i) => i.task).sort(), [TASKS.deliverCacheInvalidations, TASKS.heartbeat, TASKS.logMatviewRefreshes, TASKS.logAuditSeals].sort());
  assert.ok(items.every((i) => i.identifier.startsWith('ballast_')), 'crontab ids are namespaced too');
  assert.equal(items.find((i) => i.task === TASKS.deliverCacheInvalidations)!.options.jobKey, DELIVER_JOB_KEY);
  assert.ok(crontab.endsWith('\n'), 'ends in a newline, so an app can append its own lines');
  // What the SQL queues (rolled back): every identifier is a task of the list, with the same job key.
  await withClient(cfg.rootUrl, async (c) => {
    await c.query('begin');
    try {
      await c.query(`select ballast_worker.remove_job($1)`, [DELIVER_JOB_KEY]);
      await c.query(`select ballast.wake_cache_invalidation_worker()`);
      await c.query(`select ballast.enqueue_error_reports('[{"status": 500}]')`);
      const { rows } = await c.query<{ task_identifier: string; key: string | null }>(
        `select task_identifier, key from ballast_worker.jobs where task_identifier like 'ballast\\_%' and created_at = now() order by 1`);
      assert.deepEqual(rows, [
        { task_identifier: TASKS.deliverCacheInvalidations, key: DELIVER_JOB_KEY },
        { task_identifier: TASKS.reportError, key: null },
      ]);
    } finally {
      await c.query('rollback');
    }
  });
});

describe('ballast\'s tasks in an app\'s own graphile-worker runner (its own schema)', () => {
  const APP_SCHEMA = 'ballast_test_app_worker';
  const ran: string[] = [];
  let runner: Runner;
  before(async () => {
    // The app's runner: its schema, its task and its crontab line, with ballast's merged in.
    runner = await runGraphileWorker({
      connectionString: cfg.ownerUrl,
      schema: APP_SCHEMA,
      concurrency: 2,
      pollInterval: 200,
      noHandleSignals: true,
      logger: pinoWorkerLogger(pino({ level: 'warn' })),
      taskList: {
        ...taskList,
        app_send_email: async (payload) => { ran.push((payload as { to: string }).to); },
        app_nightly_report: async () => undefined,
      },
      crontab: '0 4 * * * app_nightly_report\n' + crontab,
    });
    runner.events.on('pool:gracefulShutdown', () => stopDeliveryPolling());
    await withClient(cfg.rootUrl, (c) => c.query(`select ballast.configure('worker_schema', $1)`, [JSON.stringify(APP_SCHEMA)]));
  });
  after(async () => {
    await runner?.stop();
    await withClient(cfg.rootUrl, async (c) => {
      await c.query(`select ballast.configure('worker_schema', null)`);
      await c.query(`drop schema if exists ${APP_SCHEMA} cascade`);
    });
  });

  it('the kit queues into the app\'s schema and the app\'s runner runs ballast\'s jobs beside its own', async () => {
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('begin');
      try {
        assert.equal((await c.query(`select ballast.worker_schema() as s`)).rows[0].s, APP_SCHEMA);
        await c.query(`select ${APP_SCHEMA}.remove_job($1)`, [DELIVER_JOB_KEY]);
        assert.equal((await c.query(`select ballast.wake_cache_invalidation_worker() as woke`)).rows[0].woke, true);
        const { rows } = await c.query(`select task_identifier from ${APP_SCHEMA}.jobs where key = $1`, [DELIVER_JOB_KEY]);
        assert.deepEqual(rows, [{ task_identifier: TASKS.deliverCacheInvalidations }], 'the wake-up job is in the app\'s schema');
        assert.equal((await c.query(`select count(*)::int as n from ballast_worker.jobs where created_at = now()`)).rows[0].n, 0, 'not in ballast_worker');
      } finally {
        await c.query('rollback');
      }
    });
    const reportId = `merge-test-${Date.now()}`;
    await withClient(cfg.rootUrl, async (c) => {
      assert.equal((await c.query(`select ballast.enqueue_error_reports($1) as n`, [JSON.stringify([{ status: 500, first_request_id: reportId }])])).rows[0].n, 1);
      await c.query(`select ${APP_SCHEMA}.add_job('app_send_email', '{"to": "ops@example.com"}')`);
    });
    await waitFor('the app\'s runner to run ballast\'s report job and its own', () => withClient(cfg.rootUrl, async (c) => {
      const left = (await c.query(`select 1 from ${APP_SCHEMA}.jobs where task_identifier in ($1, 'app_send_email')`, [TASKS.reportError])).rowCount;
      return left === 0 && ran.includes('ops@example.com') ? true : undefined;
    }));
    const metrics = await withClient(cfg.rootUrl, async (c) => (await c.query<{ task: string }>(
      `select distinct labels->>'task' as task from ballast.metrics__worker() where metric = 'ballast_worker_jobs_pending'`)).rows.map((r) => r.task));
    assert.ok(metrics.every((t) => t.startsWith('ballast_')), `the gauges report ballast's tasks only, not the app's: ${metrics.join(' ')}`);
  });

  it('run() refuses a schema other than the kit\'s worker_schema', async () => {
    await assert.rejects(run({ directUrl: cfg.ownerUrl, logLevel: 'silent' }),
      new RegExp(`uses graphile-worker schema "ballast_worker", but the kit queues ballast's jobs in "${APP_SCHEMA}"`));
  });
});
