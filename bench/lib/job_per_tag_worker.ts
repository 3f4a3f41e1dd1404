// Baseline for bench/scenarios/invalidation.ts: the naive delivery, one graphile-worker job per cache tag,
// each job POSTing its one tag to the sink. Run as its own process: node bench/lib/job_per_tag_worker.ts
// with SINK_URL set; it prints "ready" once graphile-worker runs and stops on SIGTERM.
import { Logger, run } from 'graphile-worker';
import { dbConfig } from '../../scripts/lib/config.ts';
import { WORKER_SCHEMA } from '../../src/constants.ts';

const sinkUrl = process.env.SINK_URL;
if (!sinkUrl) throw new Error('SINK_URL must be set to the sink to POST to');
const runner = await run({
  connectionString: dbConfig({ bench: true }).ownerUrl,
  schema: WORKER_SCHEMA, // the graphile-worker installation the kit's own worker uses
  concurrency: Number(process.env.CONCURRENCY || 10),
  noHandleSignals: true,
  pollInterval: 1000,
  logger: new Logger(() => (level, message) => { if (level === 'error') process.stderr.write(`${message}\n`); }),
  taskList: {
    bench_invalidate_one: async (payload) => {
      const res = await fetch(sinkUrl, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tags: [(payload as { tag: string }).tag] }), signal: AbortSignal.timeout(5000) });
      await res.text();
      if (!res.ok) throw new Error(`sink answered ${res.status}`);
    },
  },
});
process.stdout.write('ready\n');
process.once('SIGTERM', () => { runner.stop().then(() => process.exit(0), () => process.exit(1)); });
await runner.promise;
