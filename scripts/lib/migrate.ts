// graphile-migrate with the connection strings it expects in its environment, and the superuser setup
// that must precede it (roles, database, migrations/after_reset.sql).
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT, ROLES, withDatabase, type DbConfig } from './config.ts';
import { bootstrap, connect } from './bootstrap.ts';
import { fail } from './output.ts';

export function migrateEnv(cfg: DbConfig): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // .gmrc hooks run `node scripts/gm-hook.ts`: make that the Node running us (22), whoever started us.
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    DATABASE_URL: cfg.ownerUrl,
    ROOT_DATABASE_URL: withDatabase(cfg.rootUrl, 'postgres'),
    SHADOW_DATABASE_URL: cfg.shadowOwnerUrl,
  };
}

/** Runs `graphile-migrate <args>` from the project root; throws with its output on failure. */
export async function graphileMigrate(cfg: DbConfig, args: string[], opts: { quiet?: boolean; env?: Record<string, string> } = {}) {
  const r = await $({ cwd: ROOT, env: { ...migrateEnv(cfg), ...opts.env }, quiet: opts.quiet ?? true, nothrow: true })`${path.join(ROOT, 'node_modules', '.bin', 'graphile-migrate')} ${args}`;
  if (r.exitCode !== 0) {
    fail(`graphile-migrate ${args.join(' ')} failed (exit ${r.exitCode}):\n${(r.stdout + r.stderr).trim()}`);
  }
  return r;
}

/** Superuser setup that every database needs before migrations (also what `reset` runs). */
export async function afterReset(cfg: DbConfig, database = cfg.dbName): Promise<void> {
  const body = fs.readFileSync(path.join(ROOT, 'migrations', 'after_reset.sql'), 'utf8')
    .replace(/:DATABASE_NAME\b/g, database)
    .replace(/:DATABASE_OWNER\b/g, ROLES.owner);
  const client = await connect(withDatabase(cfg.rootUrl, database));
  try {
    await client.query(body);
  } finally {
    await client.end();
  }
}

/** Roles, database, superuser setup, committed migrations, then sql/ (always re-applied). */
export async function migrate(cfg: DbConfig): Promise<void> {
  await bootstrap(cfg);
  await afterReset(cfg);
  await graphileMigrate(cfg, ['migrate', '--forceActions']);
}

/** `migrations/current.sql` holds something other than comments and blank lines. */
export function currentMigrationPending(): boolean {
  const file = path.join(ROOT, 'migrations', 'current.sql');
  if (!fs.existsSync(file)) return false;
  return fs.readFileSync(file, 'utf8').split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('--'));
}
