// ballast_log_audit_seals: each audit seal's hash leaves the database in the worker's log. pg_cron seals the
// audit log inside the database every minute (ballast.seal_audit_log()); a chain rewritten there as a whole
// would still verify, but no longer match the hashes logged here (and shipped wherever the logs go).
// Scheduled every minute by the crontab (worker/crontab.ts). Each run logs the seals written in the minute
// that ended a minute before its scheduled time: a seal's time is its transaction's start, so by then it
// has committed, and consecutive runs cover consecutive minutes with no gap and no overlap. Reads through
// ballast.audit_seals_between(), a SECURITY DEFINER function: the worker needs no access to the table.
import type { Task } from 'graphile-worker';

type Seal = { seal_id: string; sealed_at: Date; kind: string; row_count: number; first_id: string | null; last_id: string | null; hash: string };

export const log_audit_seals: Task = async (payload, helpers) => {
  const cron = (payload as { _cron?: { ts?: string } } | null)?._cron;
  const scheduled = cron?.ts ? new Date(cron.ts) : new Date();
  const until = new Date(scheduled.getTime() - 60_000);
  const since = new Date(until.getTime() - 60_000);
  const seals = await helpers.withPgClient(async (client) => (await client.query<Seal>(
    'select seal_id::text, sealed_at, kind, row_count, first_id::text, last_id::text, hash from ballast.audit_seals_between($1, $2)',
    [since, until])).rows);
  for (const s of seals) {
    helpers.logger.info(`audit ${s.kind} ${s.seal_id}: ${s.row_count} rows (${s.first_id ?? '-'}..${s.last_id ?? '-'}), sha256 ${s.hash}`, {
      auditSeal: s.seal_id, kind: s.kind, sealedAt: s.sealed_at.toISOString(), rows: s.row_count, firstId: s.first_id, lastId: s.last_id, hash: s.hash,
    });
  }
};
