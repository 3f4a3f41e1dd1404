// ballast_heartbeat: records that this worker process is alive (ballast.worker_heartbeats), through
// ballast.record_worker_heartbeat(): the worker's login role has no rights on the table itself.
// Scheduled every minute by the crontab (worker/crontab.ts); an operator reads last_seen_at.
import os from 'node:os';
import type { Task } from 'graphile-worker';

export const heartbeat: Task = async (_payload, helpers) => {
  await helpers.withPgClient((client) => client.query('select ballast.record_worker_heartbeat($1, $2, $3)',
    [helpers.job.locked_by ?? `pid-${process.pid}`, os.hostname() || 'unknown', process.pid]));
};
