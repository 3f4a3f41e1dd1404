// The worker process, for real: it runs a queued job and records its heartbeat, and stops on SIGTERM.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { cfg, startNode, stop, waitFor, withClient } from './helpers.ts';

it('worker runs a queued heartbeat job and exits 0 on SIGTERM', async () => {
  await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.worker_heartbeats'));
  const worker = startNode('worker/main.ts', { LOG_LEVEL: 'info' });
  await withClient(cfg.rootUrl, (c) => c.query(`select ballast_worker.add_job('heartbeat')`));
  const row = await waitFor('a heartbeat row', () => withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ pid: number }>('select pid from ballast.worker_heartbeats')).rows[0]));
  assert.equal(row.pid, worker.proc.pid);
  await waitFor('the worker to log that it runs', async () => (/worker running/.test(worker.output()) ? true : undefined));
  assert.equal(await stop(worker), 0, worker.output());
});
