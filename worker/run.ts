// run(): ballast's own graphile-worker runner, for apps that let ballast run its worker (an app with a
// runner of its own merges taskList and crontab into it instead, and sets the kit's worker_schema).
import { EventEmitter } from 'node:events';
import pg from 'pg';
import pino from 'pino';
import { run as runGraphileWorker, type Runner, type TaskList, type WorkerEvents } from 'graphile-worker';
import { WORKER_SCHEMA } from '../src/constants.ts';
import { errorReportConfig, type ErrorReportConfig } from './config.ts';
import { crontab as ballastCrontab } from './crontab.ts';
import { invalidationConfig, type InvalidationConfig } from './invalidation_config.ts';
import { WorkerMetrics, type WorkerMetricsOptions } from './metrics.ts';
import { pinoWorkerLogger } from './logger.ts';
import { DELIVER_JOB_KEY, TASKS } from './names.ts';
import { taskList as ballastTaskList } from './task_list.ts';
import { closeInvalidationSinks, configureDelivery, stopDeliveryPolling } from './tasks/deliver_cache_invalidations.ts';
import { configureErrorReports } from './tasks/report_error.ts';
import { kitVersion } from '../src/kit_files.ts';
import { startTelemetry, type TelemetrySettings } from '../api/telemetry.ts';
import { tracedTaskList } from './trace.ts';

export type RunOptions = {
  /**
   * Where the worker connects: a direct connection or a pooler in session mode. graphile-worker LISTENs
   * for new jobs on a connection it keeps, and a LISTEN belongs to a server session: through a
   * transaction-mode pooler (PgBouncer pool_mode=transaction, Supabase's port 6543) its notifications are
   * lost and every job waits for the next poll. WORKER_DATABASE_URL in workerConfigFromEnv(). The role:
   * ballast_worker_login, the kit's login role for its worker (it may run the tasks' functions and its jobs
   * in ballast_worker, nothing else), or the role that installed the kit. Or give pgPool.
   */
  directUrl?: string;
  /** A pg.Pool of your own instead of directUrl (same need: direct or session mode). */
  pgPool?: pg.Pool;
  /**
   * graphile-worker's schema. Default ballast_worker: ballast's own installation, apart from any
   * graphile_worker of the app's. The kit's setting worker_schema must name the same (checked at start).
   */
  schema?: string;
  /** Jobs run at once (default 5). */
  concurrency?: number;
  /** Milliseconds between polls for jobs when no notification came (default 1000). */
  pollInterval?: number;
  /** A pino logger for the worker and its tasks (default: pino named "worker" at logLevel). */
  logger?: pino.Logger;
  /** Level of the default logger (default info). */
  logLevel?: string;
  /** The tasks (default ballast's taskList). Yours with ballast's: `{ ...taskList, ...yours }`. */
  taskList?: TaskList;
  /** The crontab (default ballast's crontab). Yours with ballast's: `crontab + yours`. */
  crontab?: string;
  /** Cache-invalidation sinks (default: the INVALIDATION_* variables of process.env). */
  invalidation?: InvalidationConfig;
  /** Where error reports go (default: ERROR_REPORT_URL, ERROR_REPORT_TIMEOUT_MS of process.env). */
  errorReports?: ErrorReportConfig;
  /**
   * Serve the worker's own /metrics (process, task runs and durations, LISTEN up) on this port, for
   * Prometheus to scrape as the worker's job (WORKER_METRICS_PORT, WORKER_METRICS_HOST). Default: none.
   */
  metrics?: WorkerMetricsOptions | null;
  /**
   * OpenTelemetry: each task a span exported over OTLP/HTTP JSON, in its job's trace (worker/trace.ts).
   * Default off (workerConfigFromEnv reads OTEL_EXPORTER_OTLP_ENDPOINT). Jobs with a traceparent are
   * logged with its trace id either way.
   */
  telemetry?: TelemetrySettings | null;
  /** As graphile-worker's: true leaves SIGTERM/SIGINT to you (call runner.stop()). Default false. */
  noHandleSignals?: boolean;
};

/**
 * Starts graphile-worker with ballast's tasks and crontab (or the ones given) in schema ballast_worker (or
 * the one given), and queues a delivery run at once rather than at the next minute. Resolves when the
 * runner is running; await runner.promise for its end, runner.stop() to end it.
 */
export async function run(options: RunOptions): Promise<Runner> {
  if (!options.directUrl && !options.pgPool) {
    throw new Error('ballast/worker run(): give directUrl (a direct or session-mode connection: the worker LISTENs for jobs) or pgPool');
  }
  const schema = options.schema ?? WORKER_SCHEMA;
  const logger = options.logger ?? pino({ name: 'worker', level: options.logLevel ?? 'info' });
  const taskList = options.taskList ?? ballastTaskList;
  // The tasks' settings are checked now: a bad variable stops the worker here, not at its first job.
  configureDelivery({ config: options.invalidation ?? invalidationConfig(process.env), logger });
  configureErrorReports(options.errorReports ?? errorReportConfig(process.env));
  await checkKitWorkerSchema(options, schema, logger);
  const telemetry = options.telemetry ? startTelemetry(options.telemetry, logger, kitVersion()) : null;
  await telemetry?.ready;

  // The metrics see the runner's events from its start (its LISTEN), so they get an emitter of their own.
  const events = new EventEmitter() as WorkerEvents;
  const metrics = options.metrics ? new WorkerMetrics(Object.keys(taskList)) : null;
  metrics?.observe(events);
  // Listening before the runner starts: a port in use stops the worker here, with nothing to clean up.
  const metricsServer = options.metrics ? await metrics!.serve(options.metrics, logger) : null;
  const closeMetrics = () => {
    metricsServer?.close();
    metricsServer?.closeAllConnections();
  };

  const runner = await runGraphileWorker({
    events,
    ...(options.pgPool ? { pgPool: options.pgPool } : { connectionString: options.directUrl }),
    schema,
    concurrency: options.concurrency ?? 5,
    pollInterval: options.pollInterval ?? 1000,
    logger: pinoWorkerLogger(logger),
    taskList: tracedTaskList(taskList, telemetry),
    crontab: options.crontab ?? ballastCrontab,
    noHandleSignals: options.noHandleSignals ?? false,
  }).catch((e: unknown) => {
    closeMetrics();
    throw e;
  });
  runner.promise.then(closeMetrics, closeMetrics);
  runner.events.on('pool:gracefulShutdown', () => stopDeliveryPolling());
  runner.promise.then(closeInvalidationSinks, closeInvalidationSinks).catch((e: Error) => logger.warn({ err: e }, 'closing the invalidation sinks failed'));
  if (telemetry) runner.promise.finally(() => telemetry.shutdown()).catch(() => undefined);
  if (taskList[TASKS.deliverCacheInvalidations]) {
    // Deliver now rather than at the next minute (the crontab keeps a run going after that).
    await runner.addJob(TASKS.deliverCacheInvalidations, {}, { jobKey: DELIVER_JOB_KEY, jobKeyMode: 'preserve_run_at' });
  }
  logger.info({ schema, concurrency: options.concurrency ?? 5, tasks: Object.keys(taskList) }, 'worker running');
  return runner;
}

/**
 * The kit queues ballast's jobs in the schema of its setting worker_schema; a worker on another schema
 * would never see them. Refuses to start on a mismatch; a database without the kit (or a role that may
 * not read the setting) only gets a warning.
 */
async function checkKitWorkerSchema(options: RunOptions, schema: string, logger: pino.Logger): Promise<void> {
  const read = async (c: pg.ClientBase): Promise<string | null> => {
    const { rows } = await c.query<{ ok: boolean }>(`select to_regprocedure('ballast.worker_schema()') is not null as ok`);
    return rows[0].ok ? (await c.query<{ s: string }>('select ballast.worker_schema() as s')).rows[0].s : null;
  };
  let kitSchema: string | null;
  try {
    if (options.pgPool) {
      const c = await options.pgPool.connect();
      try { kitSchema = await read(c); } finally { c.release(); }
    } else {
      const c = new pg.Client({ connectionString: options.directUrl });
      await c.connect();
      try { kitSchema = await read(c); } finally { await c.end().catch(() => undefined); }
    }
  } catch (e) {
    logger.warn({ err: e }, `could not read the kit's setting worker_schema; assuming "${schema}"`);
    return;
  }
  if (kitSchema === null) {
    logger.warn('ballast is not installed in this database (no ballast.worker_schema()): run npx ballast migrate');
  } else if (kitSchema !== schema) {
    throw new Error(`this worker uses graphile-worker schema "${schema}", but the kit queues ballast's jobs in "${kitSchema}" ` +
      `(setting worker_schema): run the worker with schema "${kitSchema}", or select ballast.configure('worker_schema', '"${schema}"')`);
  }
}
