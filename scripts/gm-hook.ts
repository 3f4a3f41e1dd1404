// Commands that .gmrc runs around graphile-migrate. GM_DBURL is set by graphile-migrate.
//   before-reset  (root) end every session on the database so DROP DATABASE succeeds
//   apply-sql     (owner) apply example/sql/ files in the order listed in example/sql/ORDER, in one transaction
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ROOT, TEST_DB_NAME, databaseOf, withDatabase } from './lib/config.ts';
import { fail } from './lib/output.ts';
import { orderedSqlFiles } from '../src/kit_files.ts';

/** The example app's definitions, in example/sql/ORDER. */
export function sqlFiles(): string[] {
  try {
    return orderedSqlFiles(path.join(ROOT, 'example', 'sql'));
  } catch (e) {
    fail((e as Error).message);
  }
}

/** The folder's real path when it exists here (the cluster may be on this machine), else the path itself. */
function realDir(dir: string): string {
  try { return fs.realpathSync(dir); } catch { return dir; }
}

async function main(): Promise<void> {
  const url = process.env.GM_DBURL;
  if (!url) fail('GM_DBURL is not set: this script is run by graphile-migrate (see .gmrc)');
  // before-reset ends every session and closes the door: only on a database this project may erase,
  // decided before any connection is made
  if (process.argv[2] === 'before-reset' && process.env.BALLAST_DISPOSABLE !== '1') {
    fail(`before-reset ends every session on ${databaseOf(url)}; it runs only through this project's scripts on its own cluster or a *_test database.\n` +
      `  To reset it anyway: npx graphile-migrate reset --erase (with DATABASE_URL and ROOT_DATABASE_URL set by you)`);
  }
  const client = new pg.Client({ connectionString: process.argv[2] === 'before-reset' ? withDatabase(url, 'postgres') : url });
  await client.connect();
  try {
    if (process.argv[2] === 'before-reset') {
      // pg_cron's launcher and its job workers reconnect on their own: close the door first, then end
      // every session and wait until they are gone, so graphile-migrate's DROP DATABASE finds none.
      const db = databaseOf(url);
      // The variable alone does not decide: the database must be named for tests, or the server must be
      // one of this project's throwaway clusters (its data folder under .ballast/ or /var/tmp/ballast-*).
      const dataDir = (await client.query<{ d: string }>('select current_setting(\'data_directory\') as d')).rows[0].d;
      const ours = [path.join(ROOT, '.ballast'), '/var/tmp/ballast-'].some((p) => dataDir.startsWith(p) || realDir(dataDir).startsWith(p));
      if (!TEST_DB_NAME.test(db) && !ours) {
        fail(`before-reset ends every session on ${db}, which is neither named for tests (*_test) nor on this project's own cluster (data in ${dataDir}): refused`);
      }
      const exists = await client.query('select 1 from pg_database where datname = $1', [db]);
      if (exists.rowCount === 0) return;
      await client.query(`alter database ${client.escapeIdentifier(db)} allow_connections false`);
      for (let i = 0; i < 100; i++) {
        const r = await client.query(
          'select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [db]);
        if (r.rows[0].n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } else if (process.argv[2] === 'apply-sql') {
      // No committed migration applied yet (graphile-migrate's own bookkeeping during commit/uncommit):
      // the schemas example/sql/ builds on do not exist, so there is nothing to apply to.
      const schema = await client.query("select to_regnamespace('app_public') is not null as present");
      if (!schema.rows[0].present || process.env.BALLAST_SKIP_SQL === '1') return;
      await client.query('begin');
      for (const file of sqlFiles()) {
        try {
          await client.query(fs.readFileSync(file, 'utf8'));
        } catch (e) {
          const err = e as pg.DatabaseError;
          fail(`${path.relative(ROOT, file)}: ${err.message}${err.position ? ` (at character ${err.position})` : ''}${err.where ? `\n  ${err.where}` : ''}`);
        }
      }
      await client.query('commit');
    } else {
      fail(`unknown hook "${process.argv[2]}": expected before-reset or apply-sql`);
    }
  } finally {
    await client.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
