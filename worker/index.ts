// ballast/worker: ballast's graphile-worker tasks, for your own runner or for ballast's.
//
// Your own runner (schema graphile_worker, say): merge ballast's tasks and schedule into yours, and tell
// the kit where its jobs go, once, as the role that installed it:
//     run({ ..., taskList: { ...taskList, ...yourTasks }, crontab: yourCrontab + crontab })
//     select ballast.configure('worker_schema', '"graphile_worker"');
// Or let ballast run its own worker, in its own schema ballast_worker (the kit's default):
//     const runner = await run(workerConfigFromEnv(process.env));
// Either way the worker needs a direct or session-mode connection: it LISTENs for jobs (see RunOptions.directUrl).
export { taskList } from './task_list.ts';
export { crontab } from './crontab.ts';
export { TASKS, DELIVER_JOB_KEY } from './names.ts';
export { run, type RunOptions } from './run.ts';
export { workerConfigFromEnv, type WorkerConfig, type ErrorReportConfig } from './config.ts';
export type { InvalidationConfig, SinkName } from './invalidation_config.ts';
export { pinoWorkerLogger } from './logger.ts';
export type { WorkerMetricsOptions } from './metrics.ts';
// In your own runner: taskList: tracedTaskList({ ...taskList, ...yours }) runs jobs with a traceparent in their request's trace.
export { tracedTaskList } from './trace.ts';
export { stopDeliveryPolling } from './tasks/deliver_cache_invalidations.ts';
