// One connection, one transaction, under the install lock: how migrate() and uninstall() change a database.
import pg from 'pg';
import { LOCK_SQL, UNLOCK_SQL } from './install_sql.ts';

/** What a NOTICE or WARNING from the server carries that the installer reads. */
export type Notice = { severity?: string; message?: string };

/**
 * Connects, takes the install lock (a session lock, before BEGIN: see LOCK_SQL), runs fn in a
 * transaction, commits (or rolls back and rethrows), unlocks and disconnects.
 */
export async function inInstallTransaction<T>(
  databaseUrl: string, applicationName: string, fn: (client: pg.Client) => Promise<T>,
  onNotice?: (n: Notice) => void,
): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: applicationName });
  await client.connect();
  try {
    if (onNotice) client.on('notice', onNotice);
    await client.query(LOCK_SQL);
    await client.query('begin');
    try {
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (e) {
      await client.query('rollback').catch(() => {});
      throw e;
    }
  } finally {
    await client.query(UNLOCK_SQL).catch(() => {});
    await client.end();
  }
}
