// Names ballast's worker shares with the kit's SQL, written once on this side. The SQL that queues these
// jobs (sql/invalidation.sql wake_cache_invalidation_worker(), sql/api.sql enqueue_error_reports()) names
// the same task identifiers and job key; test-sql/ checks it queues exactly these.

/**
 * ballast's task identifiers. Namespaced (ballast_…) so they can join an app's own graphile-worker task
 * list without colliding with its tasks.
 */
export const TASKS = {
  heartbeat: 'ballast_heartbeat',
  logMatviewRefreshes: 'ballast_log_matview_refreshes',
  deliverCacheInvalidations: 'ballast_deliver_cache_invalidations',
  reportError: 'ballast_report_error',
  logAuditSeals: 'ballast_log_audit_seals',
} as const;

/** The job key of the cache-invalidation delivery run: the crontab, run() and ballast.wake_cache_invalidation_worker() share it. */
export const DELIVER_JOB_KEY = 'ballast:deliver_cache_invalidations';
