// graphile-worker's logger, writing through pino: one JSON log for the whole worker process.
import type pino from 'pino';
import { Logger, type LogLevel } from 'graphile-worker';

/** A graphile-worker Logger that writes to the given pino logger (job id, task and attempt as fields). */
export function pinoWorkerLogger(base: pino.Logger): Logger {
  const map: Record<LogLevel, 'error' | 'warn' | 'info' | 'debug'> = { error: 'error', warning: 'warn', info: 'info', debug: 'debug' };
  return new Logger((scope) => (level, message, meta) => {
    // graphile-worker puts whole job rows in its metadata; keep the log line to what identifies the job.
    const { job, ...rest } = (meta ?? {}) as { job?: { id: string; task_identifier: string; attempts: number } };
    const jobInfo = job ? { jobId: job.id, task: job.task_identifier, attempt: job.attempts } : {};
    base[map[level]]({ ...scope, ...rest, ...jobInfo }, message);
  });
}
