// The example app's worker process: ballast's graphile-worker tasks, run the way a user's app would, through
// the package's public name `ballast/worker` (in this checkout: `node --conditions=ballast-source
// example/worker.ts`, the condition resolving the name to the TypeScript sources; an installed package
// runs its compiled dist/). Configured by the environment (README "Configuration"): WORKER_DATABASE_URL
// (a direct or session-mode connection: the worker LISTENs for jobs; as the kit's ballast_worker_login,
// which may run ballast's tasks and nothing else), WORKER_CONCURRENCY, LOG_LEVEL, the
// sinks' INVALIDATION_* and ERROR_REPORT_*. It runs in ballast's own schema ballast_worker, the kit's
// default worker_schema. SIGTERM or SIGINT: a graceful stop, then exit 0.
import { crontab, run, taskList, workerConfigFromEnv, type WorkerConfig } from 'ballast/worker';

let config: WorkerConfig;
try {
  config = workerConfigFromEnv(process.env);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}

// The example has no tasks of its own. An app that has some lists them beside ballast's:
//   taskList: { ...taskList, send_welcome_email }, crontab: crontab + '0 4 * * * nightly_report\n'
const runner = run({ ...config, taskList, crontab, noHandleSignals: true }).catch((e: Error) => {
  process.stderr.write(`worker: ${e.message}\n`);
  process.exit(1);
});

// The handlers go in while run() is still starting: a SIGTERM then (a deploy that stops a worker at once)
// would otherwise meet no handler and kill the process by the signal. It waits for the runner, then stops it.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    runner.then((r) => r.stop(`received ${signal}`)).then(() => process.exit(0), (e: Error) => {
      process.stderr.write(`worker stop failed: ${e.message}\n`);
      process.exit(1);
    });
  });
}
await (await runner).promise;
