// ballast_log_matview_refreshes: puts the refresh queue's work into the worker log, so `npm start` shows
// the registered materialized views being refreshed. pg_cron runs the refreshes inside the database
// (ballast.process_materialized_view_refreshes); this task only reports them. Scheduled every minute by
// the crontab (worker/crontab.ts); each run reports the refreshes that finished in the minute before its
// scheduled time.
import type { Task } from 'graphile-worker';

type Refresh = { matview: string; mode: string; ok: boolean; error: string | null; detail: string | null; requests: number; ms: number };
type Pending = { matview: string; pending_since: Date; consecutive_failures: number; next_attempt_at: Date | null };

export const log_matview_refreshes: Task = async (payload, helpers) => {
  const cron = (payload as { _cron?: { ts?: string } } | null)?._cron;
  const until = cron?.ts ? new Date(cron.ts) : new Date();
  const since = new Date(until.getTime() - 60_000);
  // through the kit's functions: the worker's login role has no rights on the log or the queue
  const [refreshes, pending] = await helpers.withPgClient(async (client) => [
    (await client.query<Refresh>('select * from ballast.recent_matview_refreshes($1, $2)', [since, until])).rows,
    (await client.query<Pending>('select * from ballast.pending_matview_refreshes()')).rows,
  ] as const);
  for (const r of refreshes) {
    const meta = { matview: r.matview, mode: r.mode, ms: r.ms, requests: r.requests, detail: r.detail };
    if (r.ok) helpers.logger.info(`refreshed ${r.matview} (${r.mode}, ${r.ms} ms)`, meta);
    else helpers.logger.error(`refresh of ${r.matview} failed: ${r.error}`, meta);
  }
  for (const p of pending) {
    helpers.logger.info(`${p.matview} pending since ${p.pending_since.toISOString()}`,
      { matview: p.matview, failures: p.consecutive_failures, nextAttemptAt: p.next_attempt_at });
  }
};
