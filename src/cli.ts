#!/usr/bin/env node
// The ballast command: install, upgrade, inspect and remove the kit in a database.
//   ballast migrate     [--database-url URL] [--force] [--no-worker-schema] [--lock-timeout 2s] [--lock-retries N] [--json]
//   ballast uninstall   --database-url URL [--roles] [--discard-audit-log] [--json]
//   ballast print-sql   (the install as a psql script on stdout)
//   ballast verify      [--database-url URL] [--json]
//   ballast status      [--database-url URL] [--json]
//   ballast alerts      [--api-job J] [--worker-job J] [--runbook-url U]   (Prometheus rules on stdout)
//   ballast preflight   [--database-url URL] [--targets URL,...] [--timeout-ms N] [--json]
//   ballast version     [--database-url URL] [--json]
// Exit codes: 0 done (checks all ok), 1 failed (connection, SQL, a check not ok), 2 bad usage,
// 3 refused (nothing was changed).
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from './migrate.ts';
import { DEFAULT_LOCK_RETRIES, DEFAULT_LOCK_TIMEOUT_MS, parseLockTimeout } from './install_sql.ts';
import { uninstall } from './uninstall.ts';
import { printSql } from './print_sql.ts';
import { kitVersion } from './kit_files.ts';
import { BallastError } from './errors.ts';
import { KIT_SCHEMA } from './constants.ts';
import { verify } from './verify.ts';
import { renderStatus, status } from './status.ts';
import { THRESHOLD_SPECS, thresholdsFromEnv } from './thresholds.ts';
import { DEFAULT_ALERT_OPTIONS, renderAlertRules } from './alerts.ts';
import { preflight } from './preflight.ts';
import { formatTable } from './table.ts';

const EXIT = { ok: 0, failed: 1, usage: 2, refused: 3 } as const;
const REFUSALS = new Set(['KIT_NEWER', 'KIT_MISMATCH', 'AUDIT_LOG_NOT_EMPTY', 'DEPENDENTS', 'NOT_INSTALLED']);

const THRESHOLD_HELP = Object.values(THRESHOLD_SPECS).map((t) => `  ${t.env} (${t.default}): ${t.meaning}`).join('\n');

const HELP: Record<string, string> = {
  '': `ballast ${kitVersion()}: production safety rails for PostgreSQL

Usage: ballast <command> [options]

Commands:
  migrate     install or upgrade schema ballast in a database
  uninstall   remove what ballast installed (triggers, pg_cron jobs, its schemas; roles with --roles)
  print-sql   print the install as one psql script
  verify      is this database production-ready? (ballast.verify_migration_success())
  status      the operator's one screen: queues, views, pg_cron jobs, cleanup, keys, API traffic
  alerts      print ballast's Prometheus alerting rules for your scrape jobs
  preflight   before a deploy: verify, and /health/ready of every API instance
  version     the version of this code and of the kit installed in a database

Run \`ballast <command> --help\` for its options.
Exit codes: 0 done (every check ok), 1 failed (or a check not ok), 2 bad usage, 3 refused (nothing was changed).`,
  migrate: `Usage: ballast migrate [--database-url URL] [options]

Installs schema ballast, or upgrades it to this version, in one transaction. Concurrent runs wait for
each other; a database whose kit is newer than this code is refused. It creates the roles it needs when
they are missing (never alters existing ones) and graphile-worker's schema ballast_worker for its worker.

Options:
  --database-url URL        the database, as the role that will own the kit (default: $DATABASE_URL)
  --force                   re-apply sql/ even when unchanged
  --no-worker-schema        do not install graphile-worker's schema for ballast's worker
  --lock-timeout DURATION   wait at most this long for any lock, e.g. 2s, 500ms (default 2s; 0: no limit):
                            a long transaction on a table the upgrade changes cannot queue your app behind it
  --lock-retries N          after a lock timeout, roll back and run the whole upgrade again, up to N times,
                            with backoff (default 8); each retry is logged
  --json                    print the result as JSON
Environment:
  BALLAST_AUTHENTICATOR_PASSWORD   password for ballast_authenticator when migrate creates it
                                   (without it the role is created NOLOGIN)
  BALLAST_WORKER_PASSWORD          password for ballast_worker_login (the worker's login role) when
                                   migrate creates it (without it the role is created NOLOGIN)
  BALLAST_LOCK_TIMEOUT, BALLAST_LOCK_RETRIES   defaults for --lock-timeout and --lock-retries
In .gmrc (graphile-migrate), before your migrations:
  "beforeAllMigrations": [{ "_": "command", "command": "npx ballast migrate --database-url \\"$GM_DBURL\\"" }]`,
  uninstall: `Usage: ballast uninstall --database-url URL [options]

Removes the triggers ballast put on your tables, its pg_cron jobs, schema ballast and ballast_worker,
and prints what it removed. It refuses while ballast.audit_log holds rows and while objects of yours
depend on ballast (it lists them). --database-url is required: DATABASE_URL is never read here.

Options:
  --database-url URL        the database
  --roles                   also drop the roles the installer created
  --discard-audit-log       uninstall even though the audit log holds rows (they are lost)
  --json                    print the result as JSON`,
  'print-sql': `Usage: ballast print-sql > ballast.sql

Prints the install as one psql script (the same schema as ballast migrate):
  psql -v ON_ERROR_STOP=1 [-v ballast_authenticator_password=...] [-v ballast_worker_password=...] [-v ballast_lock_timeout=2s] -d <database> -f ballast.sql
It waits at most ballast_lock_timeout for any lock and, unlike migrate, does not retry: run it again.
graphile-worker's schema for ballast's worker is not in it (the worker's login role may not create it):
run npx graphile-worker --schema-only --schema ballast_worker -c <database> as the same role, then the
script again, which gives ballast_worker_login its rights there.`,
  verify: `Usage: ballast verify [--database-url URL] [--json]

Runs ballast.verify_migration_success() and prints one row per check; exit 1 when any check is not ok.
  --database-url URL        the database (default: $DATABASE_URL)
  --json                    the checks as a JSON array of {check_name, ok, detail}`,
  status: `Usage: ballast status [--database-url URL] [--json]

The operator's one screen: worker heartbeats and dead jobs, invalidation queue, materialized views,
pg_cron jobs, cleanup policies, idempotency keys, API traffic of the last 5 minutes. An item reads FAIL
exactly when its Prometheus alert's condition holds (same thresholds); exit 1 when any item is failing.
  --database-url URL        the database (default: $DATABASE_URL)
  --json                    the sections and items as JSON
Environment (the same limits \`ballast alerts\` writes into the rules):
${THRESHOLD_HELP}`,
  alerts: `Usage: ballast alerts [--api-job J] [--worker-job J] [--runbook-url U] > ballast-alerts.yml

Prints ballast's Prometheus alerting rules. Every alert selects its series by the scrape job: the API's
(/metrics of every API replica, which also exports the database gauges) or the worker's (its
WORKER_METRICS_PORT). Check the result with promtool check rules.
  --api-job J               job label of the API targets (default ${DEFAULT_ALERT_OPTIONS.apiJob})
  --worker-job J            job label of the worker targets (default ${DEFAULT_ALERT_OPTIONS.workerJob})
  --runbook-url U           where docs/RUNBOOK.md is served; each alert links U#<alert> (default ${DEFAULT_ALERT_OPTIONS.runbookUrl})
Environment (the same limits \`ballast status\` reads):
${THRESHOLD_HELP}`,
  preflight: `Usage: ballast preflight [--database-url URL] [--targets URL,...] [--timeout-ms N] [--json]

Before a deploy: verify_migration_success() on the database and GET /health/ready of every target, in
parallel, each with its own timeout. Exit 1 on any failure.
  --database-url URL        the database (default: $DATABASE_URL)
  --targets URL,...         API instances, e.g. http://10.0.0.5:5678,http://10.0.0.6:5678
  --timeout-ms N            per target (default 3000; the database gets three times that)
  --json                    the results as JSON`,
  version: `Usage: ballast version [--database-url URL] [--json]

Prints this code's version and, with a database, the version of the kit installed there.`,
};

function fail(code: number, message: string): never {
  process.stderr.write(`ballast: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || command === '') {
    process.stdout.write(HELP[''] + '\n');
    return command === '' ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version') {
    process.stdout.write(kitVersion() + '\n');
    return EXIT.ok;
  }
  if (!(command in HELP)) fail(EXIT.usage, `unknown command "${command}": use migrate, uninstall, print-sql, verify, status, alerts, preflight or version (ballast --help)`);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest, strict: true, allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, 'database-url': { type: 'string' },
        force: { type: 'boolean' }, 'no-worker-schema': { type: 'boolean' },
        'lock-timeout': { type: 'string' }, 'lock-retries': { type: 'string' },
        roles: { type: 'boolean' }, 'discard-audit-log': { type: 'boolean' },
        targets: { type: 'string' }, 'timeout-ms': { type: 'string' },
        'api-job': { type: 'string' }, 'worker-job': { type: 'string' }, 'runbook-url': { type: 'string' },
      },
    }));
  } catch (e) {
    fail(EXIT.usage, `${(e as Error).message} (ballast ${command} --help)`);
  }
  if (values.help) {
    process.stdout.write(HELP[command] + '\n');
    return EXIT.ok;
  }
  const allowed: Record<string, string[]> = {
    migrate: ['json', 'database-url', 'force', 'no-worker-schema', 'lock-timeout', 'lock-retries'],
    uninstall: ['json', 'database-url', 'roles', 'discard-audit-log'],
    'print-sql': [],
    verify: ['json', 'database-url'],
    status: ['json', 'database-url'],
    alerts: ['api-job', 'worker-job', 'runbook-url'],
    preflight: ['json', 'database-url', 'targets', 'timeout-ms'],
    version: ['json', 'database-url'],
  };
  const extra = Object.keys(values).filter((k) => !allowed[command].includes(k));
  if (extra.length) fail(EXIT.usage, `${command} does not take --${extra.join(', --')} (ballast ${command} --help)`);
  const json = values.json === true;
  const out = (obj: unknown, text: string) => process.stdout.write(json ? JSON.stringify(obj, null, 2) + '\n' : text + '\n');

  const urlOrEnv = () => {
    const url = (values['database-url'] as string | undefined) || process.env.DATABASE_URL;
    if (!url) fail(EXIT.usage, `${command} needs --database-url URL (or DATABASE_URL)`);
    return url;
  };
  switch (command) {
    case 'verify': {
      const checks = await verify(urlOrEnv());
      const bad = checks.filter((c) => !c.ok).length;
      out(checks, formatTable(['check', 'ok', 'detail'], checks.map((c) => [c.check_name, c.ok ? 'ok' : 'NOT OK', c.detail ?? ''])) +
        `${checks.length - bad} passed, ${bad} failed`);
      return bad ? EXIT.failed : EXIT.ok;
    }
    case 'status': {
      let thresholds;
      try {
        thresholds = thresholdsFromEnv();
      } catch (e) {
        fail(EXIT.usage, (e as Error).message);
      }
      const st = await status(urlOrEnv(), thresholds);
      if (json) out(st, '');
      else process.stdout.write(renderStatus(st, process.stdout.isTTY === true));
      return st.failing ? EXIT.failed : EXIT.ok;
    }
    case 'alerts': {
      try {
        process.stdout.write(renderAlertRules({
          apiJob: (values['api-job'] as string | undefined) ?? DEFAULT_ALERT_OPTIONS.apiJob,
          workerJob: (values['worker-job'] as string | undefined) ?? DEFAULT_ALERT_OPTIONS.workerJob,
          runbookUrl: (values['runbook-url'] as string | undefined) ?? DEFAULT_ALERT_OPTIONS.runbookUrl,
          thresholds: thresholdsFromEnv(),
        }));
      } catch (e) {
        fail(EXIT.usage, (e as Error).message);
      }
      return EXIT.ok;
    }
    case 'preflight': {
      const timeoutMs = Number(values['timeout-ms'] ?? 3000);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail(EXIT.usage, `--timeout-ms must be a positive whole number, got "${values['timeout-ms']}"`);
      const targets = String(values.targets ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      let results;
      try {
        results = await preflight(urlOrEnv(), targets, timeoutMs);
      } catch (e) {
        fail(EXIT.usage, `--targets: ${(e as Error).message}`);
      }
      const bad = results.filter((r) => !r.ok).length;
      out(results, formatTable(['target', 'ok', 'ms', 'detail'], results.map((r) => [r.target, r.ok ? 'ok' : 'FAIL', String(r.ms), r.detail])) +
        `preflight: ${results.length - bad} passed, ${bad} failed`);
      return bad ? EXIT.failed : EXIT.ok;
    }
    case 'print-sql':
      process.stdout.write(printSql());
      return EXIT.ok;
    case 'migrate': {
      const databaseUrl = (values['database-url'] as string | undefined) || process.env.DATABASE_URL;
      if (!databaseUrl) fail(EXIT.usage, 'migrate needs --database-url URL (or DATABASE_URL)');
      const lockTimeoutText = (values['lock-timeout'] as string | undefined) ?? (process.env.BALLAST_LOCK_TIMEOUT || `${DEFAULT_LOCK_TIMEOUT_MS}ms`);
      let lockTimeout = 0;
      try {
        lockTimeout = parseLockTimeout(lockTimeoutText);
      } catch (e) {
        fail(EXIT.usage, `--lock-timeout (or BALLAST_LOCK_TIMEOUT): ${(e as Error).message}`);
      }
      const lockRetriesText = (values['lock-retries'] as string | undefined) ?? (process.env.BALLAST_LOCK_RETRIES || String(DEFAULT_LOCK_RETRIES));
      const lockRetries = Number(lockRetriesText);
      if (!/^\d+$/.test(lockRetriesText.trim()) || lockRetries > 1000) {
        fail(EXIT.usage, `--lock-retries (or BALLAST_LOCK_RETRIES) must be a whole number from 0 to 1000, got "${lockRetriesText}"`);
      }
      const r = await migrate({
        databaseUrl, force: values.force === true, workerSchema: values['no-worker-schema'] ? false : undefined, lockTimeout, lockRetries,
        authenticatorPassword: process.env.BALLAST_AUTHENTICATOR_PASSWORD || undefined,
        workerPassword: process.env.BALLAST_WORKER_PASSWORD || undefined,
        onProgress: json ? undefined : (line) => process.stderr.write(`ballast: ${line}\n`),
      });
      const from = r.previousVersion ? `from ${r.previousVersion} ` : '';
      if (!r.cron && !json) {
        process.stderr.write('ballast: pg_cron is not installed in this database (or not usable by this role): nothing is scheduled. ' +
          'A superuser can run `create extension pg_cron` (with cron.database_name set to this database) and `grant usage on schema cron to <role>`; then run ballast migrate --force.\n');
      }
      out(r, r.changed
        ? `ballast ${r.version} installed ${from}(${r.migrationsApplied.length} migrations, definitions ${r.definitionsApplied ? 'applied' : 'unchanged'}` +
          `${r.rolesCreated.length ? `, roles created: ${r.rolesCreated.join(', ')}` : ''})`
        : `ballast ${r.version} is already installed; nothing to do`);
      return EXIT.ok;
    }
    case 'uninstall': {
      const databaseUrl = values['database-url'] as string | undefined;
      if (!databaseUrl) fail(EXIT.usage, 'uninstall needs --database-url URL (it never reads DATABASE_URL)');
      const r = await uninstall({ databaseUrl, roles: values.roles === true, discardAuditLog: values['discard-audit-log'] === true });
      if (!r.installed) {
        out(r, 'ballast is not installed in this database; nothing removed');
        return EXIT.ok;
      }
      const lines = [
        `removed triggers: ${r.triggers.join(', ') || 'none'}`,
        `removed pg_cron jobs: ${r.cronJobs.join(', ') || 'none'}`,
        `dropped schemas: ${r.schemas.join(', ')}`,
        ...(r.auditRowsDiscarded ? [`discarded ${r.auditRowsDiscarded} audit log rows`] : []),
        ...(values.roles ? [`dropped roles: ${r.roles.join(', ') || 'none'}`] : []),
        ...r.rolesKept.map((k) => `kept role ${k.role}: ${k.reason}`),
      ];
      out(r, lines.join('\n'));
      return EXIT.ok;
    }
    case 'version': {
      const databaseUrl = (values['database-url'] as string | undefined) || process.env.DATABASE_URL;
      let installed: string | null = null;
      if (databaseUrl) {
        const c = new pg.Client({ connectionString: databaseUrl });
        await c.connect();
        try {
          const r = await c.query<{ v: string | null }>(`select case when to_regprocedure('${KIT_SCHEMA}.version()') is not null then ${KIT_SCHEMA}.version() end as v`);
          installed = r.rows[0].v;
        } finally {
          await c.end();
        }
      }
      out({ code: kitVersion(), installed }, databaseUrl ? `code ${kitVersion()}, installed ${installed ?? 'none'}` : kitVersion());
      return EXIT.ok;
    }
  }
  return EXIT.usage;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  if (e instanceof BallastError) fail(REFUSALS.has(e.code) ? EXIT.refused : EXIT.failed, e.message);
  fail(EXIT.failed, (e as Error).message);
}
