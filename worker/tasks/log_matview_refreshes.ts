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
  const [refreshes, pending] = await helpers.withPgClient(async (client) => [
    (await client.query<Refresh>(
      `select ballast.relation_name(matview) as matview, mode, ok, error, detail, requests,
              round(extract(epoch from duration) * 1000)::int as ms
       from ballast.mv_refresh_log where finished_at > $1 and finished_at <= $2 order by finished_at`, [since, until])).rows,
    (await client.query<Pending>(
      `select ballast.relation_name(matview) as matview, pending_since, consecutive_failures, next_attempt_at
       from ballast.matview_status where pending_since is not null order by pending_since`)).rows,
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
