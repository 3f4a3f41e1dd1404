// npm run migrate [-- <graphile-migrate arguments>]
// Without arguments: roles, database, committed migrations, then sql/. With arguments: graphile-migrate
// itself with the right connection strings, e.g. `npm run migrate -- commit --message "add funds"`.
import { dbConfig } from './lib/config.ts';
import * as cluster from './lib/cluster.ts';
import { graphileMigrate, migrate } from './lib/migrate.ts';
import { log } from './lib/output.ts';

const cfg = dbConfig();
const args = process.argv.slice(2);
if (cfg.managed) await cluster.up(cfg); // the local cluster may be stopped; migrating needs it
if (args.length === 0) {
  await migrate(cfg);
  log(`database ${cfg.dbName} is migrated`);
} else {
  // While graphile-migrate commits or uncommits, it migrates the shadow database without the migration
  // being committed, so sql/ may refer to tables that do not exist yet: sql/ is applied by the next migrate.
  const skipSql = ['commit', 'uncommit', 'watch'].includes(args[0]);
  await graphileMigrate(cfg, args, { quiet: false, env: skipSql ? { BALLAST_SKIP_SQL: '1' } : {} });
  if (skipSql) log('sql/ was not applied during this command; `npm run migrate` applies it');
}
