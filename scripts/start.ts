// npm start: cluster up → migrate → the example's API (example/server.ts) + worker. Ctrl-C or SIGTERM
// stops the API and the worker, then the cluster if this command started it; nothing is left running.
import path from 'node:path';
import { ROOT, apiEnv, dbConfig, workerEnv } from './lib/config.ts';
import * as cluster from './lib/cluster.ts';
import { ensureSystemPackages } from './lib/system.ts';
import { migrate } from './lib/migrate.ts';
import { startChild, stopChildren, type Child } from './lib/processes.ts';
import { fail, log } from './lib/output.ts';
import { connect } from './lib/bootstrap.ts';

let cfg: ReturnType<typeof dbConfig>;
try {
  cfg = dbConfig();
} catch (e) {
  fail((e as Error).message);
}
await ensureSystemPackages({ server: cfg.managed, tests: false });
const wasRunning = cfg.managed && (await cluster.status(cfg)).running;
if (cfg.managed) await cluster.up(cfg);
await migrate(cfg);

// Development mode (committed JWT secret, /admin/dev-tokens, example data) only on the local cluster:
// against a database ballast did not create, the API runs in production mode and nothing is seeded.
// The API connects as the authenticator of the database chosen here (AUTH_DATABASE_URL): the kit's
// server knows nothing of this project's clusters.
// The API's environment has no other database login (apiEnv drops DATABASE_URL, the owner's password …).
const env = { ...apiEnv(process.env, cfg.authUrl), GRAPHILE_ENV: process.env.GRAPHILE_ENV || (cfg.managed ? 'development' : 'production') };
if (!cfg.managed) log('DATABASE_URL names a database ballast did not create: production mode, no example data, no dev tokens');
if (env.GRAPHILE_ENV === 'development' && cfg.managed) {
  // The example logins the admin page's development sign-in offers (example/sql/app_admin.sql); idempotent.
  const owner = await connect(cfg.ownerUrl);
  try {
    const { rows } = await owner.query<{ user_name: string }>('select user_name from app_private.seed_example_data()');
    log(`admin page: http://${process.env.HOST || '127.0.0.1'}:${process.env.PORT || '5678'}/admin (development sign-in: ${rows.map((r) => r.user_name).join(', ')})`);
  } finally {
    await owner.end();
  }
}
const node = process.execPath;
// The example's processes import the package by its public names (ballast/postgraphile, ballast/worker);
// the ballast-source condition resolves them to this checkout's TypeScript instead of dist/.
const conditions = '--conditions=ballast-source';
const children: Child[] = [
  startChild('api', node, [conditions, path.join(ROOT, 'example', 'server.ts')], env),
  // the worker LISTENs for jobs: a direct connection, as ballast's worker's own login role
  // (ballast_worker_login: its tasks' functions and its jobs, no owner's or superuser's login in its environment)
  startChild('worker', node, [conditions, path.join(ROOT, 'example', 'worker.ts')],
    { ...workerEnv(process.env, cfg.workerUrl), GRAPHILE_ENV: env.GRAPHILE_ENV }),
];

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log('stopping api and worker');
    await stopChildren(children);
    if (cfg.managed && !wasRunning) await cluster.down(cfg);
  }
  process.exit(code);
}
process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));
for (const c of children) {
  c.exited.then((code) => {
    if (!stopping) {
      log(`${c.name} exited unexpectedly (code ${code}); stopping everything`);
      void stop(1);
    }
  });
}
