// graphile-worker's schedule for ballast's tasks (pg_cron schedules the kit's SQL-only processors). The
// one source of ballast's crontab: a string, so an app that runs ballast's tasks in its own runner appends
// it to its own (`crontab: myCrontab + crontab`). Each line's id is namespaced too: graphile-worker keys
// its record of past runs (known_crontabs) by it.
import { DELIVER_JOB_KEY, TASKS } from './names.ts';

const everyMinute = (task: string, options: Record<string, string> = {}) =>
  `* * * * * ${task} ?${new URLSearchParams({ id: task, ...options })}`;

/** ballast's crontab lines (graphile-worker crontab syntax), ending in a newline. */
export const crontab = [
  '# ballast (ballast/worker): ┌ minute ┬ hour ┬ day ┬ month ┬ weekday  task  options',
  everyMinute(TASKS.heartbeat, { fill: '1m' }),
  everyMinute(TASKS.logMatviewRefreshes),
  everyMinute(TASKS.logAuditSeals),
  '# cache invalidation: a delivery run every minute (each polls up to INVALIDATION_RUN_SECONDS), so one is always there',
  everyMinute(TASKS.deliverCacheInvalidations, { jobKey: DELIVER_JOB_KEY, jobKeyMode: 'preserve_run_at' }),
  '',
].join('\n');
