// npm run db -- <up|down|reset|psql|status|migrate>
//   up      start the local cluster (initdb on first use), create roles and database, migrate
//   down    stop it
//   reset   stop it and delete its data folder, then `up` again
//   psql    open psql on the app database as the superuser (extra arguments go to psql)
//   status  say whether the cluster is initialised and running
import { spawnSync } from 'node:child_process';
import { dbConfig, redact } from './lib/config.ts';
import * as cluster from './lib/cluster.ts';
import { ensureSystemPackages } from './lib/system.ts';
import { migrate } from './lib/migrate.ts';
import { fail, log } from './lib/output.ts';

const [cmd = 'status', ...rest] = process.argv.slice(2);
const cfg = dbConfig();

async function up(): Promise<void> {
  await ensureSystemPackages({ server: cfg.managed, tests: false });
  if (cfg.managed) await cluster.up(cfg);
  await migrate(cfg);
  log(`database ${cfg.dbName} migrated (${redact(cfg.ownerUrl)})`);
}

switch (cmd) {
  case 'up':
    await up();
    break;
  case 'down':
    if (!cfg.managed) fail('DATABASE_URL is set: that server is not managed by ballast, so there is nothing to stop.');
    await cluster.down(cfg);
    break;
  case 'reset':
    if (!cfg.managed) fail('DATABASE_URL is set: ballast will not delete a server it does not manage.');
    await cluster.destroy(cfg);
    await up();
    break;
  case 'psql': {
    const r = spawnSync('psql', [cfg.rootUrl, ...rest], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    break;
  }
  case 'status': {
    if (!cfg.managed) {
      log(`external server: ${redact(cfg.rootUrl)}`);
      break;
    }
    const s = await cluster.status(cfg);
    log(`cluster ${cfg.dataDir}: ${s.initialised ? 'initialised' : 'not initialised'}, ${s.running ? `running on 127.0.0.1:${cfg.port}` : 'not running'}`);
    process.exitCode = s.running ? 0 : 1;
    break;
  }
  default:
    fail(`unknown command "${cmd}": use up, down, reset, psql or status`);
}
