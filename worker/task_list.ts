// Every task ballast's worker runs, by the identifier jobs are queued under (one file per task in tasks/;
// the file is named for what the task does, the identifier adds the ballast_ namespace).
import type { TaskList } from 'graphile-worker';
import { TASKS } from './names.ts';
import { heartbeat } from './tasks/heartbeat.ts';
import { log_matview_refreshes } from './tasks/log_matview_refreshes.ts';
import { deliver_cache_invalidations } from './tasks/deliver_cache_invalidations.ts';
import { report_error } from './tasks/report_error.ts';
import { log_audit_seals } from './tasks/log_audit_seals.ts';

/** ballast's tasks. In your own runner: `taskList: { ...taskList, ...yourTasks }`. */
export const taskList: TaskList = {
  [TASKS.heartbeat]: heartbeat,
  [TASKS.logMatviewRefreshes]: log_matview_refreshes,
  [TASKS.deliverCacheInvalidations]: deliver_cache_invalidations,
  [TASKS.reportError]: report_error,
  [TASKS.logAuditSeals]: log_audit_seals,
};
