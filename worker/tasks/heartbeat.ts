// ballast_heartbeat: records that this worker process is alive (ballast.worker_heartbeats).
// Scheduled every minute by the crontab (worker/crontab.ts); an operator reads last_seen_at.
import os from 'node:os';
import type { Task } from 'graphile-worker';

export const heartbeat: Task = async (_payload, helpers) => {
  await helpers.withPgClient((client) => client.query(
    `insert into ballast.worker_heartbeats (worker_id, hostname, pid, last_seen_at)
     values ($1, $2, $3, now())
     on conflict (worker_id) do update set last_seen_at = excluded.last_seen_at`,
    [helpers.job.locked_by ?? `pid-${process.pid}`, os.hostname(), process.pid]));
};
