// A user's app, installed next to the ballast tarball (test/package.test.ts copies it into an empty folder
// that has no TypeScript): it uses only the package's public exports. It installs the kit, serves its own
// schema through ballast's PostGraphile server, sends one mutation twice with an Idempotency-Key and gets
// a replay, and runs one of ballast's worker tasks in ballast's own graphile-worker schema (concurrency 2: run()
// starts a cache-invalidation delivery run at once, which holds one slot while it polls).
// Environment: ADMIN_URL (the database, as the role that installs and owns the kit), AUTH_URL (the same
// database as ballast_authenticator).
import pg from 'pg';
import { migrate, verify, kitVersion } from 'ballast';
import { startApi } from 'ballast/postgraphile';
import { run, taskList, crontab } from 'ballast/worker';

const say = (line) => process.stdout.write(`consumer: ${line}\n`);
const { ADMIN_URL, AUTH_URL } = process.env;

const installed = await migrate({ databaseUrl: ADMIN_URL });
say(`migrate: ballast ${installed.version} (${installed.migrationsApplied.length} migrations, worker schema ${installed.workerSchema})`);
const checks = await verify(ADMIN_URL);
say(`verify: ${checks.length} checks, ${checks.filter((c) => !c.ok).length} not ok`);

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`
  create schema if not exists shop;
  create table if not exists shop.orders (id serial primary key, item text not null);
  grant usage on schema shop to ballast_anonymous;
  grant select, insert on shop.orders to ballast_anonymous;
  grant usage on sequence shop.orders_id_seq to ballast_anonymous;`);

const api = await startApi({ schemas: ['shop'], connectionString: AUTH_URL, port: 0, jwt: false, logLevel: 'warn', rateLimit: false });
const url = `http://127.0.0.1:${api.port}/graphql`;
const send = () => fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', 'idempotency-key': 'consumer-order-1' },
  body: JSON.stringify({ query: 'mutation { createOrder(input: { order: { item: "tea" } }) { order { id item } } }' }),
});
const first = await send();
const firstBody = await first.text();
const second = await send();
const secondBody = await second.text();
const rows = (await admin.query('select count(*)::int as n from shop.orders')).rows[0].n;
say(`mutation: ${first.status} ${firstBody}`);
say(`retry: ${second.status} replayed=${second.headers.get('idempotent-replayed')} same body=${secondBody === firstBody} orders=${rows}`);
await api.close(1000);

const worker = await run({ directUrl: ADMIN_URL, taskList, crontab, concurrency: 2, logLevel: 'warn', noHandleSignals: true });
await admin.query(`select ballast_worker.add_job('ballast_heartbeat')`);
let beats = 0;
for (let i = 0; i < 100 && beats === 0; i++) {
  await new Promise((r) => setTimeout(r, 100));
  beats = (await admin.query('select count(*)::int as n from ballast.worker_heartbeats')).rows[0].n;
}
say(`worker: tasks ${Object.keys(taskList).join(', ')}; ballast_heartbeat ran: ${beats > 0}`);
await worker.stop();
await admin.end();
say(`done (ballast ${kitVersion()}, node ${process.versions.node})`);
