// A PostgreSQL cluster of a test's own, for what the shared test database cannot show: a database ballast
// did not create, roles that did not exist before, pg_cron in the database under test. Started with the
// same code as the project's cluster (scripts/lib/cluster.ts); call destroy() in the file's after().
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, type DbConfig } from '../scripts/lib/config.ts';
import * as cluster from '../scripts/lib/cluster.ts';
import { freePort } from './helpers.ts';

export type Scratch = { url: (db: string, user?: string, password?: string) => string; port: number; destroy: () => Promise<void> };

/** Starts a cluster whose pg_cron lives in `cronDatabase`; superuser postgres, trust on loopback. */
export async function scratchCluster(cronDatabase: string): Promise<Scratch> {
  fs.mkdirSync(path.join(ROOT, '.ballast'), { recursive: true });
  const dataDir = path.join(fs.mkdtempSync(path.join(ROOT, '.ballast', 'scratch-')), 'pgdata');
  const port = await freePort();
  const url = (db: string, user = 'postgres', password = '') =>
    `postgres://${encodeURIComponent(user)}${password ? ':' + encodeURIComponent(password) : ''}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  const cfg: DbConfig = {
    managed: true, disposable: true, port, dataDir, dbName: cronDatabase,
    rootUrl: url(cronDatabase), ownerUrl: '', authUrl: '', workerUrl: '', shadowOwnerUrl: '', ownerPassword: '', authenticatorPassword: '', workerPassword: '',
  };
  process.env.BALLAST_PG_FSYNC = 'off';
  await cluster.up(cfg);
  const destroy = async () => {
    await cluster.destroy(cfg);
    fs.rmSync(path.dirname(dataDir), { recursive: true, force: true });
  };
  return { url, port, destroy };
}
