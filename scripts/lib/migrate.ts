// The example app's migrations: graphile-migrate with the connection strings it expects, after the
// superuser setup it needs (roles, database and, on a disposable database only, example/migrations/
// after_reset.sql). The kit itself is installed by the .gmrc hook `ballast migrate`, as a user's would be.
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT, ROLES, withDatabase, type DbConfig } from './config.ts';
import { bootstrap, connect } from './bootstrap.ts';
import { fail, log } from './output.ts';

export const EXAMPLE_MIGRATIONS = path.join(ROOT, 'example', 'migrations');

export function migrateEnv(cfg: DbConfig): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // .gmrc hooks run `node scripts/gm-hook.ts` and `npx ballast`: make that the Node running us (22)
    PATH: `${path.join(ROOT, 'node_modules', '.bin')}:${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    DATABASE_URL: cfg.ownerUrl,
    ROOT_DATABASE_URL: withDatabase(cfg.rootUrl, 'postgres'),
    SHADOW_DATABASE_URL: cfg.shadowOwnerUrl,
    // ballast migrate creates ballast_authenticator with this password when it is missing
    BALLAST_AUTHENTICATOR_PASSWORD: cfg.authenticatorPassword,
    // and ballast_worker_login (ballast's worker's login role) with this one
    BALLAST_WORKER_PASSWORD: cfg.workerPassword,
    BALLAST_DISPOSABLE: cfg.disposable ? '1' : '0',
  };
}

/** Runs `graphile-migrate <args>` from the project root; throws with its output on failure. */
export async function graphileMigrate(cfg: DbConfig, args: string[], opts: { quiet?: boolean; env?: Record<string, string> } = {}) {
  if (['reset'].includes(args[0]) && !cfg.disposable) {
    fail(`graphile-migrate ${args.join(' ')} erases database ${cfg.dbName}, which ballast did not create: refused.\n` +
      `  If you mean it, run it yourself: npx graphile-migrate ${args.join(' ')}`);
  }
  const r = await $({ cwd: ROOT, env: { ...migrateEnv(cfg), ...opts.env }, quiet: opts.quiet ?? true, nothrow: true })`${path.join(ROOT, 'node_modules', '.bin', 'graphile-migrate')} ${args}`;
  if (r.exitCode !== 0) {
    fail(`graphile-migrate ${args.join(' ')} failed (exit ${r.exitCode}):\n${(r.stdout + r.stderr).trim()}`);
  }
  return r;
}

/**
 * Superuser setup of a disposable database (also what graphile-migrate's reset runs): example/migrations/
 * after_reset.sql. It revokes PUBLIC's access and installs pg_cron, so it never runs on a database
 * ballast did not create.
 */
export async function afterReset(cfg: DbConfig, database = cfg.dbName): Promise<void> {
  if (!cfg.disposable) return;
  const body = fs.readFileSync(path.join(EXAMPLE_MIGRATIONS, 'after_reset.sql'), 'utf8')
    .replace(/:DATABASE_NAME\b/g, `"${database.replace(/"/g, '""')}"`)
    .replace(/:DATABASE_OWNER\b/g, ROLES.owner);
  const client = await connect(withDatabase(cfg.rootUrl, database));
  try {
    await client.query(body);
  } finally {
    await client.end();
  }
}

/** Roles, database, superuser setup, then graphile-migrate (kit via the .gmrc hook, example migrations, example/sql). */
export async function migrate(cfg: DbConfig): Promise<void> {
  await bootstrap(cfg);
  await afterReset(cfg);
  await graphileMigrate(cfg, ['migrate', '--forceActions']);
  if (!cfg.disposable) log(`migrated ${cfg.dbName}, which ballast did not create: only schema ballast, ballast_worker and the example's schemas were touched`);
}

/** `example/migrations/current.sql` holds something other than comments and blank lines. */
export function currentMigrationPending(): boolean {
  const file = path.join(EXAMPLE_MIGRATIONS, 'current.sql');
  if (!fs.existsSync(file)) return false;
  return fs.readFileSync(file, 'utf8').split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('--'));
}
