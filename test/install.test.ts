// The kit on a database it did not create: install, use, uninstall and nothing of the app's has changed;
// two installers at once; a newer kit refused; print-sql gives the same schema as migrate; upgrading from
// every released version gives the schema of a fresh install, rows kept. All through the real CLI
// (src/cli.ts) against a cluster of the test's own, so roles start absent and pg_cron lives in the
// database under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { runMigrations, Logger } from 'graphile-worker';
import { ROOT } from '../scripts/lib/config.ts';
import { PG_BIN } from '../scripts/lib/system.ts';
import { runNode, withClient } from './helpers.ts';
import { scratchCluster, type Scratch } from './scratch_cluster.ts';

const run = promisify(execFile);
const CRON_DB = 'foreign_app';

type Result = { code: number | null; out: string; err: string };

/** `ballast <args>` as a user runs it: a real process. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return runNode('src/cli.ts', args, { env, without: ['DATABASE_URL'] });
}

async function q<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  return withClient(url, async (c) => (await c.query(sql, params)).rows as T[]);
}

async function pgDump(url: string, args: string[]): Promise<string> {
  const r = await run(path.join(PG_BIN, 'pg_dump'), ['--schema-only', '--no-sync', ...args, '-d', url], { maxBuffer: 64 << 20 });
  // pg_dump >= 15.14 brackets its output with \restrict <random key> ... \unrestrict <key>
  // and names the refresh queue's generated objects after the view's oid, which differs between databases
  return r.stdout.replace(/^\\(un)?restrict \S+$/gm, '').replace(/(matview_request_flag)_\d+/g, '$1_<oid>');
}

/** Equal dumps, or a failure that shows the lines only one of them has (not two 300 kB strings). */
function assertSameDump(actual: string, expected: string, message: string): void {
  if (actual === expected) return;
  const a = actual.split('\n'), e = expected.split('\n');
  const onlyA = a.filter((l) => !e.includes(l)).slice(0, 40), onlyE = e.filter((l) => !a.includes(l)).slice(0, 40);
  assert.fail(`${message}\n  only in actual:\n    ${onlyA.join('\n    ')}\n  only in expected:\n    ${onlyE.join('\n    ')}`);
}

/** pg_dump's objects by their header (name, type, schema), e.g. "orders _900_audit_insert; TRIGGER; public". */
function dumpObjects(dump: string): Map<string, string> {
  const objects = new Map<string, string>();
  const parts = dump.split(/^--\n-- (Name: .*)\n--\n/m);
  for (let i = 1; i < parts.length; i += 2) objects.set(parts[i].replace(/; Owner: .*$/, ''), parts[i + 1].trim());
  return objects;
}

/** Everything of the app's that ballast must not touch: all but schema ballast, ballast_* schemas, roles and jobs. */
async function snapshotOutside(s: Scratch, db: string) {
  return {
    schema: await pgDump(s.url(db), ['-N', 'ballast', '-N', 'ballast_*']),
    roles: await q(s.url(db), `select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
                                      rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil,
                                      array(select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = a.oid order by 1) as member_of
                               from pg_authid a where rolname !~ '^(ballast_|pg_)' order by rolname`),
    database: await q(s.url(db), `select datname, pg_get_userbyid(datdba) as owner, datacl::text, datallowconn, datconnlimit,
                                         array(select unnest(setconfig) from pg_db_role_setting where setdatabase = d.oid order by 1) as settings
                                  from pg_database d order by datname`),
    cron: await q(s.url(CRON_DB), `select jobid, schedule, command, nodename, nodeport, database, username, active, jobname
                                   from cron.job where coalesce(jobname, '') !~ '^ballast[_ ]' order by jobid`),
    workerMigrations: await q(s.url(db), `select id, breaking from graphile_worker.migrations order by id`),
  };
}

let s: Scratch;
before(async () => {
  s = await scratchCluster(CRON_DB);
});
after(async () => {
  await s?.destroy();
});

describe('ballast in a database it did not create', () => {
  const appUrl = () => s.url(CRON_DB);

  before(async () => {
    await q(s.url('postgres'), `create role foreign_owner login password 'foreign-owner-secret'`);
    await q(s.url('postgres'), `create role foreign_reader login password 'foreign-reader-secret' connection limit 7`);
    await q(s.url('postgres'), `create database ${CRON_DB} owner foreign_owner`);
    await q(appUrl(), `create extension pg_cron`);
    await q(appUrl(), `grant usage on schema cron to foreign_owner`);
    await q(s.url(CRON_DB, 'foreign_owner'), `
      create table public.orders (id bigint generated always as identity primary key, org_id uuid not null, total numeric not null default 0, note text);
      create table public.customers (id uuid primary key default gen_random_uuid(), name text not null);
      alter table public.orders enable row level security;
      create policy orders_reader on public.orders for select to foreign_reader using (total >= 0);
      grant select on public.orders, public.customers to foreign_reader;
      create function public.order_count() returns bigint language sql stable as 'select count(*) from public.orders';
      create materialized view public.order_totals as select org_id, sum(total) as total, count(*) as n from public.orders group by org_id;
      create unique index order_totals_org_id_idx on public.order_totals (org_id);
      select cron.schedule('foreign_nightly', '0 3 * * *', 'select public.order_count()');`);
    // the app's own graphile-worker, in the default schema graphile_worker
    await runMigrations({ connectionString: s.url(CRON_DB, 'foreign_owner'), logger: new Logger(() => () => {}) });
  });

  it('installs, is used on the app\'s tables, and uninstalls leaving everything else as it was', async () => {
    const before1 = await snapshotOutside(s, CRON_DB);

    const install = await cli(['migrate', '--database-url', appUrl()], { BALLAST_AUTHENTICATOR_PASSWORD: 'authenticator-secret', BALLAST_WORKER_PASSWORD: 'worker-secret' });
    assert.equal(install.code, 0, install.err);
    assert.match(install.out, /ballast \d+\.\d+\.\d+ installed .*roles created: ballast_admin, ballast_anonymous, ballast_authenticator, ballast_member, ballast_worker_login/);
    const installed = await q<{ version: string }>(appUrl(), 'select ballast.version() as version');
    assert.equal(installed[0].version, JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    assert.deepEqual((await q<{ jobname: string }>(appUrl(), `select jobname from cron.job where jobname ~ '^ballast[_ ]' order by 1`)).map((r) => r.jobname).length > 0, true,
      'ballast scheduled its own pg_cron jobs');
    assert.equal((await q(appUrl(), `select 1 from pg_namespace where nspname = 'ballast_worker'`)).length, 1, 'its worker has a graphile-worker schema of its own');

    await q(appUrl(), `
      select ballast.enable_audit('public.orders');
      select ballast.invalidate_on_change('public.orders', array['order:{id}', 'orders']);
      select ballast.register_matview('public.order_totals', array['public.orders']::regclass[]);
      insert into public.orders (org_id, total) values (gen_random_uuid(), 10);`);
    // ballast's worker's login role, made by the installer with the password given, claims the change's tags
    // through the kit's function and nothing else of the kit's or the app's
    const workerUrl = s.url(CRON_DB, 'ballast_worker_login', 'worker-secret');
    const claimed = await q<{ tag: string }>(workerUrl, 'select tag from ballast.drain_cache_invalidation_queue(10, 30) order by tag');
    assert.deepEqual(claimed.map((r) => r.tag), ['order:1', 'orders']);
    await assert.rejects(q(workerUrl, 'select 1 from public.orders'), { code: '42501' }, 'the worker\'s role cannot read the app\'s tables');
    await assert.rejects(q(workerUrl, 'select 1 from ballast.audit_log'), { code: '42501' }, 'nor the audit log');

    const during = await snapshotOutside(s, CRON_DB);
    const a = dumpObjects(before1.schema), b = dumpObjects(during.schema);
    const added = [...b.keys()].filter((k) => !a.has(k));
    const removed = [...a.keys()].filter((k) => !b.has(k));
    const changed = [...a.keys()].filter((k) => b.has(k) && a.get(k) !== b.get(k));
    process.stdout.write(`# pg_dump outside ballast, after install and use: ${added.length} added (${added.join(' | ')}), ${removed.length} removed, ${changed.length} changed\n`);
    assert.deepEqual(removed, []);
    assert.deepEqual(changed, []);
    assert.ok(added.length > 0);
    for (const k of added) assert.match(k, /^Name: orders \S+; Type: TRIGGER; Schema: public$/, `only triggers on the named table: ${k}`);
    assert.deepEqual(during.roles, before1.roles, 'roles of the app: attributes, password hashes, memberships unchanged');
    assert.deepEqual(during.database, before1.database, 'database owner, ACL, settings unchanged');
    assert.deepEqual(during.cron, before1.cron, 'the app\'s pg_cron jobs unchanged');
    assert.deepEqual(during.workerMigrations, before1.workerMigrations, 'the app\'s graphile_worker schema version unchanged');

    // the audit log holds a row: refused, nothing removed
    const refused = await cli(['uninstall', '--database-url', appUrl()]);
    assert.equal(refused.code, 3, refused.err);
    assert.match(refused.err, /audit_log holds 1 rows.*--discard-audit-log/);
    // an object of the app's uses the kit: refused, named, nothing removed
    await q(appUrl(), `create view public.my_org as select ballast.current_org_id() as org_id`);
    const dependent = await cli(['uninstall', '--database-url', appUrl(), '--discard-audit-log']);
    assert.equal(dependent.code, 3, dependent.err);
    assert.match(dependent.err, /view public\.my_org/);
    assert.equal((await q(appUrl(), `select 1 from pg_trigger where tgname = '_900_audit_insert'`)).length, 1, 'a refused uninstall removes nothing');
    await q(appUrl(), `drop view public.my_org`);

    const removedAll = await cli(['uninstall', '--database-url', appUrl(), '--discard-audit-log', '--roles']);
    assert.equal(removedAll.code, 0, removedAll.err);
    process.stdout.write(`# ballast uninstall:\n${removedAll.out.replace(/^/gm, '#   ')}\n`);
    assert.match(removedAll.out, /removed triggers: .*_900_audit_insert on orders/);
    assert.match(removedAll.out, /dropped schemas: ballast, ballast_worker/);
    assert.match(removedAll.out, /dropped roles: ballast_admin, ballast_anonymous, ballast_authenticator, ballast_member, ballast_worker_login/);

    const after = await snapshotOutside(s, CRON_DB);
    assertSameDump(after.schema, before1.schema, 'pg_dump --schema-only of everything is as before the install');
    assert.deepEqual(after, before1);
    assert.deepEqual(await q(appUrl(), `select rolname from pg_roles where rolname like 'ballast\\_%'`), []);
    assert.deepEqual(await q(appUrl(), `select jobname from cron.job where jobname ~ '^ballast[_ ]'`), []);
    assert.deepEqual(await q(appUrl(), `select nspname from pg_namespace where nspname like 'ballast%'`), []);
  });

  it('uninstall where nothing is installed says so and exits 0; without --database-url it refuses', async () => {
    const none = await cli(['uninstall', '--database-url', appUrl()]);
    assert.equal(none.code, 0, none.err);
    assert.match(none.out, /not installed/);
    const noUrl = await cli(['uninstall'], { DATABASE_URL: appUrl() });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.err, /needs --database-url/);
  });
});

describe('installers', () => {
  it('two at once: one installs, the other waits and changes nothing', async () => {
    await q(s.url('postgres'), 'create database race');
    const [a, b] = await Promise.all([cli(['migrate', '--database-url', s.url('race')]), cli(['migrate', '--database-url', s.url('race')])]);
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    const outs = [a.out, b.out];
    assert.equal(outs.filter((o) => /installed \(\d+ migrations, definitions applied/.test(o)).length, 1, outs.join(''));
    assert.equal(outs.filter((o) => /is already installed; nothing to do/.test(o)).length, 1, outs.join(''));
    assert.equal((await q(s.url('race'), 'select * from ballast.installs')).length, 1);
  });

  it('refuses a database whose kit is newer than its code, changing nothing', async () => {
    await q(s.url('race'), `insert into ballast.installs (version, definitions_sha1) values ('99.0.0', 'from the future')`);
    const r = await cli(['migrate', '--database-url', s.url('race'), '--force']);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /this database has ballast 99\.0\.0, newer than this code \(ballast \d+\.\d+\.\d+/);
    assert.equal((await q(s.url('race'), 'select * from ballast.installs')).length, 2);
    await q(s.url('race'), `delete from ballast.installs where version = '99.0.0'`);
    await q(s.url('race'), `insert into ballast.migrations (id, name, version) values (999, '000999-from-the-future', '99.0.0')`);
    const m = await cli(['migrate', '--database-url', s.url('race')]);
    assert.equal(m.code, 3, m.err);
    assert.match(m.err, /with migration 000999-from-the-future/);
  });

  it('print-sql through psql gives the same schema as migrate, and running it again changes nothing', async () => {
    await q(s.url('postgres'), 'create database via_psql');
    await q(s.url('postgres'), 'create database via_migrate');
    const script = await cli(['print-sql']);
    assert.equal(script.code, 0, script.err);
    const file = path.join(ROOT, '.ballast', `print-sql-${process.pid}.sql`);
    fs.writeFileSync(file, script.out);
    try {
      for (let i = 0; i < 2; i++) await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', s.url('via_psql'), '-f', file]);
    } finally {
      fs.rmSync(file);
    }
    const m = await cli(['migrate', '--database-url', s.url('via_migrate')]);
    assert.equal(m.code, 0, m.err);
    assertSameDump(await pgDump(s.url('via_psql'), ['-n', 'ballast']), await pgDump(s.url('via_migrate'), ['-n', 'ballast']), 'print-sql and migrate give one schema');
    assert.equal((await q(s.url('via_psql'), 'select * from ballast.installs')).length, 1, 'the second run found nothing to do');
  });

  it('a released version is frozen: releases/<package.json version>.sql, when present, is what print-sql prints', async () => {
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    const file = path.join(ROOT, 'releases', `${version}.sql`);
    if (!fs.existsSync(file)) return; // an unreleased version: its script is written when it is released
    const script = await cli(['print-sql']);
    assert.equal(script.code, 0, script.err);
    assert.ok(script.out === fs.readFileSync(file, 'utf8'),
      `the kit (migrations/, sql/ or the installer) changed after ${version} was released: give the change a new version in package.json ` +
      `(releases/${version}.sql stays as it is; node src/cli.ts print-sql > releases/<new version>.sql when that one is released)`);
  });

  it('upgrading from every released version gives the schema of a fresh install, with the rows kept', async () => {
    const releases = fs.readdirSync(path.join(ROOT, 'releases')).filter((f) => /^\d+\.\d+\.\d+\.sql$/.test(f));
    assert.ok(releases.length > 0, 'releases/ holds the install script of every released version');
    await q(s.url('postgres'), 'create database fresh');
    const fresh = await cli(['migrate', '--database-url', s.url('fresh')]);
    assert.equal(fresh.code, 0, fresh.err);
    // ballast_worker too: graphile-worker's schema for ballast's worker, with the worker's login role's rights
    const want = await pgDump(s.url('fresh'), ['-n', 'ballast', '-n', 'ballast_worker']);
    const seed = fs.readFileSync(path.join(ROOT, 'test', 'kit_rows.sql'), 'utf8');
    for (const release of releases) {
      const db = `upgrade_${release.replace(/\.sql$/, '').replace(/\./g, '_')}`;
      await q(s.url('postgres'), `create database ${db}`);
      await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', s.url(db), '-f', path.join(ROOT, 'releases', release)]);
      // what that release's `ballast migrate` did after its transaction: graphile-worker's schema, as the installer
      await runMigrations({ connectionString: s.url(db), schema: 'ballast_worker', logger: new Logger(() => () => {}) });
      await q(s.url(db), seed);
      const counts = async () => q<{ t: string; n: number }>(s.url(db), `
        select c.relname as t, (xpath('/row/n/text()', query_to_xml(format('select count(*) as n from %s', c.oid::regclass), false, true, '')))[1]::text::int as n
        from pg_class c where c.relnamespace = 'ballast'::regnamespace and c.relkind in ('r', 'p') order by 1`);
      const seeded = await counts();
      assert.deepEqual(seeded.filter((r) => r.n === 0).map((r) => r.t), [], `every kit table of ${release} has a row (add one to test/kit_rows.sql)`);
      const up = await cli(['migrate', '--database-url', s.url(db)]);
      assert.equal(up.code, 0, up.err);
      assertSameDump(await pgDump(s.url(db), ['-n', 'ballast', '-n', 'ballast_worker']), want, `upgrade from ${release} gives the schema of a fresh install`);
      const kept = (await counts()).filter((r) => !['installs', 'migrations'].includes(r.t));
      for (const r of kept) assert.ok(r.n >= (seeded.find((x) => x.t === r.t)?.n ?? 0), `${r.t}: rows kept through the upgrade from ${release}`);
      assert.deepEqual(await q(s.url(db), `select old_values, new_values from ballast.audit_log where op = 'UPDATE'`),
        (await q<{ n: number }>(s.url(db), `select count(*)::int as n from ballast.audit_log where op = 'UPDATE'`))[0].n
          ? [{ old_values: { v: 1 }, new_values: { v: 2 } }] : [], `an UPDATE's audit row from ${release} holds the changed columns only`);
    }
  });
});
