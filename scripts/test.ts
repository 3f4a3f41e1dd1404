// npm test: a throwaway cluster (or BALLAST_TEST_DATABASE_URL, a database named *_test, erased; never
// DATABASE_URL) → roles → the example's migrations from scratch (the kit through its .gmrc hook) on the
// database and on the shadow database → verify_migration_success() → pgTAP (pg_prove: the kit's
// test-sql/, the example's example/test-sql/) → node:test suites → the API's core node:test suites again
// through PgBouncer in transaction mode → one summary line. Exits non-zero on any failure.
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROLES, ROOT, dbConfig, withDatabase } from './lib/config.ts';
import * as cluster from './lib/cluster.ts';
import { ensureSystemPackages } from './lib/system.ts';
import { startPgBouncer, type PgBouncer } from './lib/pgbouncer.ts';
import { afterReset, currentMigrationPending, graphileMigrate } from './lib/migrate.ts';
import { bootstrap, connect } from './lib/bootstrap.ts';
import { verify } from './verify.ts';
import { fail, log } from './lib/output.ts';
import { printTable } from '../src/table.ts';

type Step = { name: string; passed: number; failed: number };
const steps: Step[] = [];
const only = process.argv.slice(2); // e.g. `npm test -- test/api.test.ts` runs just those node tests
// The API's core suites (JWT, RLS and "why denied", idempotency keys, rate limits, statement_timeout → 504,
// and what must not outlive a transaction) run a second time with the API's connections through PgBouncer
// in transaction mode (test/helpers.ts startApi reads BALLAST_TEST_PGBOUNCER_URL). The worker needs LISTEN
// and keeps its direct connection.
const VIA_PGBOUNCER = ['test/api_jwt.test.ts', 'test/access.test.ts', 'test/idempotency.test.ts', 'test/idempotency_crash.test.ts', 'test/api_rate_limit.test.ts',
  'test/api_error_reports.test.ts', 'test/pgbouncer.test.ts'];

if (currentMigrationPending()) {
  fail('example/migrations/current.sql is not empty: commit it (npm run migrate -- commit --message "...") or empty it');
}
let cfg: ReturnType<typeof dbConfig>;
try {
  // BALLAST_TEST_CLUSTER and BALLAST_TEST_PG_PORT let two runs (two worktrees, two people) use separate clusters
  cfg = dbConfig({ test: true, dataDir: path.join(ROOT, '.ballast', process.env.BALLAST_TEST_CLUSTER || 'test-pgdata') });
} catch (e) {
  fail((e as Error).message);
}
await ensureSystemPackages({ server: true, tests: true }); // the round-trip tests start clusters of their own
if (process.env.DATABASE_URL) log('DATABASE_URL is set and ignored: tests use their own cluster (or BALLAST_TEST_DATABASE_URL, a *_test database)');
if (!cfg.managed) log(`BALLAST_TEST_DATABASE_URL: tests run on ${cfg.dbName} there and ERASE it first`);

const keep = process.env.BALLAST_KEEP_TEST_DB === '1';
let exitCode = 1;
try {
  if (cfg.managed) {
    await cluster.destroy(cfg);
    process.env.BALLAST_PG_FSYNC = 'off'; // a throwaway cluster need not survive a power cut
    await cluster.up(cfg);
  }
  await bootstrap(cfg);
  await afterReset(cfg);
  await graphileMigrate(cfg, ['reset', '--erase']);
  await graphileMigrate(cfg, ['reset', '--shadow', '--erase']);
  await graphileMigrate(cfg, ['migrate', '--forceActions']); // sql/ applies twice: proves it is idempotent
  log('migrations applied from scratch to the database and the shadow database');

  const checks = await verify(cfg.ownerUrl);
  const badChecks = checks.filter((c) => !c.ok);
  if (badChecks.length) printTable(['check', 'ok', 'detail'], badChecks.map((c) => [c.check_name, 'NOT OK', c.detail ?? '']));
  steps.push({ name: 'verify_migration_success()', passed: checks.length - badChecks.length, failed: badChecks.length });

  const tsc = await $({ cwd: ROOT, nothrow: true, verbose: true })`tsc --noEmit -p ${ROOT}`;
  steps.push({ name: 'typecheck (tsc --noEmit)', passed: tsc.exitCode === 0 ? 1 : 0, failed: tsc.exitCode === 0 ? 0 : 1 });

  if (only.length === 0) {
    const root = await connect(cfg.rootUrl);
    await root.query('create extension if not exists pgtap');
    await root.end();
    const url = new URL(cfg.rootUrl);
    const pgEnv = { ...process.env, PGHOST: url.hostname, PGPORT: url.port || '5432', PGUSER: decodeURIComponent(url.username),
      PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: cfg.dbName };
    const prove = await $({ cwd: ROOT, env: pgEnv, nothrow: true, verbose: true })`pg_prove --ext .sql -r test-sql/ example/test-sql/`;
    const m = /Files=\d+, Tests=(\d+)/.exec(prove.stdout);
    const total = m ? Number(m[1]) : 0;
    const failedMatch = /Failed (\d+)\/(\d+) subtests/g;
    let failed = 0;
    for (const f of prove.stdout.matchAll(failedMatch)) failed += Number(f[1]);
    if (prove.exitCode !== 0 && failed === 0) failed = 1; // a file that died before its plan
    steps.push({ name: 'pgTAP (pg_prove test-sql/ example/test-sql/)', passed: total - failed, failed });
  }

  const files = only.length ? only : fs.readdirSync(path.join(ROOT, 'test')).filter((f) => f.endsWith('.test.ts')).map((f) => path.join('test', f));
  // A hung test must fail the run, not stall CI: each test gets 5 minutes, a file's process exits when
  // its tests are done even if a handle is left open, and the whole step gets 30 minutes.
  const testEnv: NodeJS.ProcessEnv = { ...process.env, BALLAST_TEST: '1', GRAPHILE_ENV: process.env.GRAPHILE_ENV || 'test', ...(cfg.managed ? { BALLAST_TEST_PG_DATA: fs.realpathSync(cfg.dataDir) } : {}) };
  delete testEnv.DATABASE_URL; // nothing under test may reach the caller's database
  delete testEnv.BALLAST_TEST_PGBOUNCER_URL; // set for the pass through pgbouncer only
  steps.push({ name: 'node:test (test/)', ...(await nodeTests(files, testEnv, 'node-tests', '30m')) });

  const viaBouncer = files.filter((f) => VIA_PGBOUNCER.includes(path.relative(ROOT, path.resolve(ROOT, f))));
  if (viaBouncer.length) {
    const step = 'node:test via pgbouncer (transaction mode)';
    let bouncer: PgBouncer | null = null;
    try {
      const auth = new URL(cfg.authUrl);
      bouncer = await startPgBouncer({ serverUrl: cfg.authUrl,
        users: [{ name: decodeURIComponent(auth.username) || ROLES.authenticator, password: decodeURIComponent(auth.password) }] });
      log(`pgbouncer (pool_mode = transaction) on 127.0.0.1:${bouncer.port} in front of ${cfg.dbName}: the API's core tests again through it`);
      steps.push({ name: step, ...(await nodeTests(viaBouncer, { ...testEnv, BALLAST_TEST_PGBOUNCER_URL: bouncer.via(cfg.authUrl) }, 'node-tests-pgbouncer', '15m')) });
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      steps.push({ name: step, passed: 0, failed: 1 });
    } finally {
      await bouncer?.stop();
    }
  }
  exitCode = steps.some((s) => s.failed > 0) ? 1 : 0;
} finally {
  if (cfg.managed && !keep) await cluster.destroy(cfg);
  else if (keep) log(`kept the test database: psql ${withDatabase(cfg.rootUrl, cfg.dbName)}`);
}

/** node --test over files, one file at a time; the counts come from its TAP report. */
async function nodeTests(files: string[], env: NodeJS.ProcessEnv, report: string, timeout: `${number}m`): Promise<{ passed: number; failed: number }> {
  // One report per run (two runs on separate clusters may share the checkout), read once and removed.
  const tapFile = path.join(ROOT, '.ballast', `${report}-${process.pid}.tap`);
  fs.mkdirSync(path.dirname(tapFile), { recursive: true });
  const r = await $({ cwd: ROOT, nothrow: true, verbose: true, timeout, env })`node --test --test-concurrency=1 --test-timeout=300000 --test-force-exit --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination=${tapFile} ${files}`;
  const tap = fs.existsSync(tapFile) ? fs.readFileSync(tapFile, 'utf8') : '';
  fs.rmSync(tapFile, { force: true });
  const passed = Number(/^# pass (\d+)/m.exec(tap)?.[1] ?? 0);
  let failed = Number(/^# fail (\d+)/m.exec(tap)?.[1] ?? 0);
  if (r.exitCode !== 0 && failed === 0) failed = 1;
  return { passed, failed };
}

printTable(['step', 'passed', 'failed'], steps.map((s) => [s.name, String(s.passed), String(s.failed)]));
const passed = steps.reduce((n, s) => n + s.passed, 0);
const failed = steps.reduce((n, s) => n + s.failed, 0);
process.stdout.write(`summary: ${passed} passed, ${failed} failed\n`);
process.exit(exitCode);
