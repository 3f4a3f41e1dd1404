// One connection, one transaction, under the install lock: how migrate() and uninstall() change a database.
import pg from 'pg';
import { LOCK_NOT_AVAILABLE, LOCK_SQL, UNLOCK_SQL, lockTimeoutSql } from './install_sql.ts';

/** What a NOTICE or WARNING from the server carries that the installer reads. */
export type Notice = { severity?: string; message?: string };

/** A retry after a lock timeout: which attempt failed, on what, and how long until the next one. */
export type LockRetry = { attempt: number; attempts: number; delayMs: number; error: Error };

/**
 * Wait briefly for locks and try the whole transaction again instead of queueing the app behind a long
 * transaction: every attempt sets lock_timeout; one that fails with 55P03 (lock_not_available) is rolled
 * back entirely, and after a backoff the transaction runs again from the start, up to `retries` times.
 */
export type LockPolicy = {
  lockTimeoutMs: number;
  retries: number;
  onRetry?: (r: LockRetry) => void;
  /** Milliseconds to wait before attempt n + 1 (default: 500 ms doubling to 15 s, with jitter). */
  backoffMs?: (n: number) => number;
};

export const defaultBackoffMs = (n: number) => Math.round(Math.min(15_000, 500 * 2 ** (n - 1)) * (0.5 + Math.random() / 2));

/** The error, or the error a BallastError wraps, is PostgreSQL's lock_not_available. */
export function isLockNotAvailable(e: unknown): boolean {
  const err = e as { code?: string; sqlstate?: string };
  return err?.code === LOCK_NOT_AVAILABLE || err?.sqlstate === LOCK_NOT_AVAILABLE;
}

/**
 * Connects, takes the install lock (a session lock, before BEGIN: see LOCK_SQL), runs fn in a
 * transaction, commits (or rolls back and rethrows), unlocks and disconnects. With a lock policy the
 * transaction waits at most lockTimeoutMs for any lock and is retried as a whole after a lock timeout;
 * the install lock is kept across attempts, so each one starts after any other installer finished.
 * fn gets the attempt number (1, 2, ...) and must start from scratch each time.
 */
export async function inInstallTransaction<T>(
  databaseUrl: string, applicationName: string, fn: (client: pg.Client, attempt: number) => Promise<T>,
  onNotice?: (n: Notice) => void, lockPolicy?: LockPolicy,
): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: applicationName });
  await client.connect();
  try {
    if (onNotice) client.on('notice', onNotice);
    await client.query(LOCK_SQL);
    for (let attempt = 1; ; attempt++) {
      await client.query('begin');
      try {
        if (lockPolicy) await client.query(lockTimeoutSql(lockPolicy.lockTimeoutMs));
        const result = await fn(client, attempt);
        await client.query('commit');
        return result;
      } catch (e) {
        await client.query('rollback').catch(() => {});
        if (!lockPolicy || !isLockNotAvailable(e) || attempt > lockPolicy.retries) throw e;
        const delayMs = (lockPolicy.backoffMs ?? defaultBackoffMs)(attempt);
        lockPolicy.onRetry?.({ attempt, attempts: lockPolicy.retries + 1, delayMs, error: e as Error });
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  } finally {
    await client.query(UNLOCK_SQL).catch(() => {});
    await client.end();
  }
}
