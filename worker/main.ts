// Entry point of the worker process: graphile-worker with pino logging and the task list.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Logger, run, type LogLevel } from 'graphile-worker';
import { ROOT, dbConfig } from '../scripts/lib/config.ts';
import { WORKER_SCHEMA } from '../src/constants.ts';

const logger = pino({ name: 'worker', level: process.env.LOG_LEVEL || 'info' });

/** graphile-worker's logger, writing through pino. */
export function pinoWorkerLogger(base: pino.Logger): Logger {
  const map: Record<LogLevel, 'error' | 'warn' | 'info' | 'debug'> = { error: 'error', warning: 'warn', info: 'info', debug: 'debug' };
  return new Logger((scope) => (level, message, meta) => {
    // graphile-worker puts whole job rows in its metadata; keep the log line to what identifies the job.
    const { job, ...rest } = (meta ?? {}) as { job?: { id: string; task_identifier: string; attempts: number } };
    const jobInfo = job ? { jobId: job.id, task: job.task_identifier, attempt: job.attempts } : {};
    base[map[level]]({ ...scope, ...rest, ...jobInfo }, message);
  });
}

const { taskList } = await import('./task_list.ts');
const concurrency = Number(process.env.WORKER_CONCURRENCY || 5);
if (!Number.isInteger(concurrency) || concurrency < 1) {
  logger.fatal(`WORKER_CONCURRENCY must be a whole number of at least 1, got "${process.env.WORKER_CONCURRENCY}"`);
  process.exit(2);
}
const runner = await run({
  connectionString: dbConfig().ownerUrl,
  schema: WORKER_SCHEMA, // ballast's own graphile-worker schema: an app's graphile_worker is left alone
  concurrency,
  logger: pinoWorkerLogger(logger),
  taskList,
  crontab: fs.readFileSync(path.join(ROOT, 'worker', 'crontab'), 'utf8'),
  noHandleSignals: true,
  pollInterval: 1000,
});
// Start cache-invalidation delivery now rather than at the next minute (worker/crontab keeps it going).
await runner.addJob('deliver_cache_invalidations', {}, { jobKey: 'ballast:deliver_cache_invalidations', jobKeyMode: 'preserve_run_at' });
logger.info({ concurrency, tasks: Object.keys(taskList) }, 'worker running');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'worker stopping');
    runner.stop().then(() => process.exit(0), (e: Error) => {
      logger.error({ err: e }, 'worker stop failed');
      process.exit(1);
    });
  });
}
await runner.promise;
