// Every task the worker runs, by the identifier jobs are queued under (one file per task in tasks/).
import type { TaskList } from 'graphile-worker';
import { heartbeat } from './tasks/heartbeat.ts';
import { log_matview_refreshes } from './tasks/log_matview_refreshes.ts';
import { deliver_cache_invalidations } from './tasks/deliver_cache_invalidations.ts';
import { report_error } from './tasks/report_error.ts';

export const taskList: TaskList = {
  heartbeat,
  log_matview_refreshes,
  deliver_cache_invalidations,
  report_error,
};
