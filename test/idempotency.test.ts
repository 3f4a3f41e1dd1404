// Idempotency keys for real: concurrent callers in SQL, and GraphQL mutations through real API processes
// (1,000 concurrent duplicates, a process killed mid-flight, 422, 400s, required keys, replays).
// The countable side effect is a fixture made here, as the superuser, before the API starts (PostGraphile
// reads the schema at startup): app_public.idem_effects and app_public.slow_effect(label, seconds).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { cfg, pgBouncerUrl, postGraphQL, startApi, startServer, stop, waitFor, withClient, type Reply } from './helpers.ts';

const run = `idem-test-${randomUUID().slice(0, 8)}`; // prefixes every key and label this file creates

const FIXTURE = `
  create table app_public.idem_effects (
    id serial primary key,
    label text not null check (length(label) <= 100)
  );
  alter table app_public.idem_effects enable row level security;
  alter table app_public.idem_effects force row level security;
  create policy idem_effects_anonymous on app_public.idem_effects for all to ballast_anonymous using (true) with check (true);
  grant select, insert on app_public.idem_effects to ballast_anonymous;
  grant usage on sequence app_public.idem_effects_id_seq to ballast_anonymous;
  create function app_public.slow_effect(label text, seconds double precision) returns app_public.idem_effects as $$
  declare
    r app_public.idem_effects;
  begin
    perform pg_sleep(seconds);
    insert into app_public.idem_effects (label) values (label) returning * into r;
    return r;
  end;
  $$ language plpgsql volatile;
  grant execute on function app_public.slow_effect(text, double precision) to ballast_anonymous;`;
const DROP_FIXTURE = `
  drop function if exists app_public.slow_effect(text, double precision);
  drop table if exists app_public.idem_effects;`;

const CREATE = 'mutation($label: String!) { createIdemEffect(input: {idemEffect: {label: $label}}) { idemEffect { label } } }';
const SLOW = 'mutation($label: String!, $seconds: Float!) { slowEffect(input: {label: $label, seconds: $seconds}) { result { label } } }';

const post = postGraphQL;

async function effects(label: string): Promise<number> {
  return withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ n: number }>('select count(*)::int as n from app_public.idem_effects where label = $1', [label])).rows[0].n);
}

async function keyRows(): Promise<number> {
  return withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ n: number }>("select count(*)::int as n from ballast.idempotency_keys where key like $1 || '%'", [run])).rows[0].n);
}

describe('idempotency keys', () => {
  before(async () => {
    await withClient(cfg.rootUrl, async (c) => { await c.query(DROP_FIXTURE); await c.query(FIXTURE); });
  });
  after(async () => {
    await withClient(cfg.rootUrl, async (c) => {
      await c.query(DROP_FIXTURE);
      await c.query("delete from ballast.idempotency_keys where key like $1 || '%' or scope like $1 || '%'", [run]);
    });
  });

  it('SQL: of 32 concurrent callers of idempotency_begin with one key, exactly one gets started', async () => {
    const clients = await Promise.all(Array.from({ length: 32 }, async () => {
      const c = new pg.Client({ connectionString: cfg.authUrl });
      await c.connect();
      return c;
    }));
    try {
      const outcomes = await Promise.all(clients.map(async (c) =>
        (await c.query<{ outcome: string }>('select outcome from ballast.idempotency_begin($1, $2, $3)', [`${run}-sql`, `${run}-k`, 'h'])).rows[0].outcome));
      assert.equal(outcomes.filter((o) => o === 'started').length, 1, `outcomes: ${outcomes.join(' ')}`);
      assert.ok(outcomes.every((o) => o === 'started' || o === 'in_progress'), `outcomes: ${outcomes.join(' ')}`);
      // Only the holder (same session here) can complete; then every caller gets the replay.
      const holder = clients[outcomes.indexOf('started')];
      const other = clients[(outcomes.indexOf('started') + 1) % clients.length];
      await assert.rejects(other.query('select ballast.idempotency_complete($1, $2, 200, $3)', [`${run}-sql`, `${run}-k`, 'x']), { code: '55000' });
      await holder.query('select ballast.idempotency_complete($1, $2, 200, $3)', [`${run}-sql`, `${run}-k`, 'done']);
      const replays = await Promise.all(clients.map(async (c) =>
        (await c.query<{ outcome: string; response_body: string }>('select outcome, response_body from ballast.idempotency_begin($1, $2, $3)', [`${run}-sql`, `${run}-k`, 'h'])).rows[0]));
      assert.ok(replays.every((r) => r.outcome === 'replay' && r.response_body === 'done'));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('SQL with a holder argument: the holder need not stay on one connection (through pgbouncer in its pass)', async () => {
    // Behind a transaction pooler a caller's statements run on server connections other callers share, so
    // each names its holder; the holder completes from another connection than the one it began on.
    const clients = await Promise.all(Array.from({ length: 16 }, async () => {
      const c = new pg.Client({ connectionString: pgBouncerUrl ?? cfg.authUrl });
      await c.connect();
      return c;
    }));
    const scope = `${run}-held`;
    const key = `${run}-k`;
    const holder = (i: number) => `${run}-holder-${i}`;
    try {
      const outcomes = await Promise.all(clients.map(async (c, i) =>
        (await c.query<{ outcome: string }>('select outcome from ballast.idempotency_begin($1, $2, $3, holder => $4)', [scope, key, 'h', holder(i)])).rows[0].outcome));
      assert.equal(outcomes.filter((o) => o === 'started').length, 1, `outcomes: ${outcomes.join(' ')}`);
      const started = outcomes.indexOf('started');
      const elsewhere = clients[(started + 1) % clients.length];
      await assert.rejects(elsewhere.query('select ballast.idempotency_complete($1, $2, 200, $3, holder => $4)', [scope, key, 'x', holder(started + 1)]), { code: '55000' });
      await assert.rejects(elsewhere.query('select ballast.idempotency_complete($1, $2, 200, $3, holder => $4)', [scope, key, 'x', '']), { code: '22023' });
      await elsewhere.query('select ballast.idempotency_complete($1, $2, 200, $3, holder => $4)', [scope, key, 'done', holder(started)]);
      const replays = await Promise.all(clients.map(async (c, i) =>
        (await c.query<{ outcome: string; response_body: string }>('select outcome, response_body from ballast.idempotency_begin($1, $2, $3, holder => $4)', [scope, key, 'h', holder(i)])).rows[0]));
      assert.ok(replays.every((r) => r.outcome === 'replay' && r.response_body === 'done'));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  describe('on GraphQL mutations', () => {
    let api: Awaited<ReturnType<typeof startApi>>;
    before(async () => {
      // A short lease: it plays no part for the API, whose claim commits only with the stored result.
      api = await startApi({ IDEMPOTENCY_REQUIRED_MUTATIONS: 'createIdemEffect', IDEMPOTENCY_LEASE_SECONDS: '2' });
    });
    after(async () => { await stop(api); });

    it('1,000 concurrent identical mutations with one key, on two API processes: the effect is applied once, the rest replay or get 409', async () => {
      const label = `${run}-thousand`;
      const key = `${run}-thousand`;
      const payload = { query: SLOW, variables: { label, seconds: 0.5 } };
      const second = await startApi({ IDEMPOTENCY_LEASE_SECONDS: '2' });
      const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
      let replies: Reply[];
      try {
        replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => post(i % 2 ? second.url : api.url, payload, { 'idempotency-key': key }, agent)));
      } finally {
        agent.destroy();
        await stop(second);
      }
      assert.equal(await effects(label), 1, 'the mutation ran exactly once');
      const original = replies.filter((r) => r.status === 200 && r.headers['idempotent-replayed'] === undefined);
      const replayed = replies.filter((r) => r.status === 200 && r.headers['idempotent-replayed'] === 'true');
      const busy = replies.filter((r) => r.status === 409);
      assert.equal(original.length, 1, 'exactly one response is the original');
      assert.equal(original.length + replayed.length + busy.length, 1000,
        `unexpected responses: ${JSON.stringify(replies.filter((r) => ![200, 409].includes(r.status)).slice(0, 3))}`);
      assert.deepEqual(JSON.parse(original[0].body), { data: { slowEffect: { result: { label } } } });
      assert.ok(replayed.every((r) => r.body === original[0].body), 'every replay is the original body');
      assert.ok(busy.every((r) => Number(r.headers['retry-after']) >= 1), 'every 409 says when to retry');
      assert.ok(replies.every((r) => r.headers['idempotency-key'] === key), 'the key is echoed');
      process.stderr.write(`# 1,000 duplicates: 1 original, ${replayed.length} replays, ${busy.length} × 409\n`);
    });

    it('a duplicate waits for the holder only IDEMPOTENCY_LOCK_WAIT_MS, then gets 409 with Retry-After; the claim is never visible uncommitted; after the commit it replays', async () => {
      const label = `${run}-waits`;
      const payload = { query: SLOW, variables: { label, seconds: 3 } };
      const other = await startApi({ IDEMPOTENCY_LEASE_SECONDS: '2', IDEMPOTENCY_LOCK_WAIT_MS: '500' });
      try {
        const first = post(api.url, payload, { 'idempotency-key': label });
        await waitFor('the first request to be inside pg_sleep', () => withClient(cfg.rootUrl, async (c) =>
          (await c.query("select 1 from pg_stat_activity where wait_event = 'PgSleep' and usename = 'ballast_authenticator'")).rows.length > 0 ? true : undefined));
        assert.equal(await withClient(cfg.rootUrl, async (c) => (await c.query('select 1 from ballast.idempotency_keys where key = $1', [label])).rows.length), 0,
          'the claim commits only with the result: no other transaction sees it in progress');
        // the same process (waits on the request it runs) and another one (waits on the row in PostgreSQL)
        for (const [where, url, waitMs] of [['same process', api.url, 1000], ['other process', other.url, 500]] as const) {
          const t0 = performance.now();
          const duplicate = await post(url, payload, { 'idempotency-key': label });
          const waited = performance.now() - t0;
          assert.equal(duplicate.status, 409, `${where}: ${duplicate.status} ${duplicate.body}`);
          assert.ok(Number(duplicate.headers['retry-after']) >= 1, `${where}: Retry-After`);
          assert.ok(waited >= waitMs * 0.9 && waited < 2500, `${where}: waited ${Math.round(waited)} ms for a lock wait of ${waitMs} ms`);
        }
        const original = await first;
        assert.equal(original.status, 200);
        assert.equal(original.headers['idempotent-replayed'], undefined);
        const again = await post(other.url, payload, { 'idempotency-key': label });
        assert.equal(again.headers['idempotent-replayed'], 'true');
        assert.equal(again.body, original.body);
        assert.equal(await effects(label), 1);
      } finally {
        await stop(other);
      }
    });

    it('a duplicate waiting on a holder that commits meanwhile gets the replay, without a 409', async () => {
      const label = `${run}-waits-replay`;
      const payload = { query: SLOW, variables: { label, seconds: 0.6 } };
      const other = await startApi({ IDEMPOTENCY_LOCK_WAIT_MS: '5000' });
      try {
        const first = post(api.url, payload, { 'idempotency-key': label });
        await waitFor('the first request to be inside pg_sleep', () => withClient(cfg.rootUrl, async (c) =>
          (await c.query("select 1 from pg_stat_activity where wait_event = 'PgSleep' and usename = 'ballast_authenticator'")).rows.length > 0 ? true : undefined));
        const duplicate = await post(other.url, payload, { 'idempotency-key': label });
        const original = await first;
        assert.equal(duplicate.status, 200, duplicate.body);
        assert.equal(duplicate.headers['idempotent-replayed'], 'true');
        assert.equal(duplicate.body, original.body);
        assert.equal(await effects(label), 1);
      } finally {
        await stop(other);
      }
    });

    it('the primary key is the final arbiter: a key claimed through idempotency_begin while the API runs it rolls the API\'s work back, and the request is answered as a duplicate (409)', async () => {
      const label = `${run}-arbiter`;
      const payload = { query: SLOW, variables: { label, seconds: 1 } };
      // the scope and request hash the API uses for this request: from a stored run of the same operation under another key
      const probe = `${run}-arbiter-probe`;
      assert.equal((await post(api.url, payload, { 'idempotency-key': probe })).status, 200);
      const { scope, request_hash: hash } = await withClient(cfg.rootUrl, async (c) =>
        (await c.query<{ scope: string; request_hash: string }>('select scope, request_hash from ballast.idempotency_keys where key = $1', [probe])).rows[0]);
      const before = await effects(label);
      const first = post(api.url, payload, { 'idempotency-key': label });
      await waitFor('the request to be inside pg_sleep', () => withClient(cfg.rootUrl, async (c) =>
        (await c.query("select 1 from pg_stat_activity where wait_event = 'PgSleep' and usename = 'ballast_authenticator'")).rows.length > 0 ? true : undefined));
      // code of yours claims the same key through the SQL API meanwhile: begin takes no advisory lock, its row commits at once
      const begun = await withClient(cfg.rootUrl, async (c) =>
        (await c.query<{ outcome: string }>("select outcome from ballast.idempotency_begin($1, $2, $3, lease => '60 seconds', holder => 'sql-caller')", [scope, label, hash])).rows[0].outcome);
      assert.equal(begun, 'started');
      const reply = await first;
      assert.equal(reply.status, 409, reply.body);
      assert.ok(Number(reply.headers['retry-after']) >= 1, 'Retry-After');
      assert.equal(await effects(label), before, 'the API\'s mutation was rolled back: no effect');
      assert.equal(await withClient(cfg.rootUrl, async (c) =>
        (await c.query<{ locked_by: string }>('select locked_by from ballast.idempotency_keys where key = $1', [label])).rows[0]?.locked_by), 'sql-caller',
        'the SQL caller still holds its key');
    });

    it('a retry after completion replays the stored status and body; the mutation does not run again', async () => {
      const label = `${run}-retry`;
      const key = `"${run}-retry"`; // the draft's Structured Field string form: the key is what is inside the quotes
      const first = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': key });
      assert.equal(first.status, 200);
      assert.equal(first.headers['idempotency-key'], key);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const second = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': key });
      assert.equal(second.status, 200);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
      assert.equal(second.headers['content-type']?.replace(/\s/g, ''), first.headers['content-type']?.replace(/\s/g, ''));
      // the same operation formatted differently, variables in another order: the same request
      const reformatted = { query: `mutation ($label: String!) {\n  createIdemEffect(input: { idemEffect: { label: $label } }) {\n    idemEffect { label }\n  }\n}`, variables: { label } };
      const third = await post(api.url, reformatted, { 'idempotency-key': `${run}-retry` });
      assert.equal(third.headers['idempotent-replayed'], 'true', 'whitespace does not change the request hash');
      assert.equal(await effects(label), 1);
    });

    it('stores errors too: a mutation that fails replays the same failure', async () => {
      const label = `${run}-${'x'.repeat(120)}`; // violates the fixture's check (length <= 100)
      const first = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': `${run}-error` });
      assert.match(first.body, /errors/);
      const second = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': `${run}-error` });
      assert.equal(second.status, first.status);
      assert.equal(second.body, first.body);
      assert.equal(second.headers['idempotent-replayed'], 'true');
    });

    it('same key, different body: 422, and the stored result is kept', async () => {
      const label = `${run}-mismatch`;
      const first = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': `${run}-mismatch` });
      assert.equal(first.status, 200);
      const other = await post(api.url, { query: CREATE, variables: { label: `${label}-other` } }, { 'idempotency-key': `${run}-mismatch` });
      assert.equal(other.status, 422);
      assert.match(other.body, /different request/);
      assert.equal(await effects(`${label}-other`), 0);
      const again = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': `${run}-mismatch` });
      assert.equal(again.headers['idempotent-replayed'], 'true');
    });

    it('bad keys get 400 and leave no row: empty, 256 characters, control characters, non-ASCII', async () => {
      const label = `${run}-badkeys`;
      const before = await withClient(cfg.rootUrl, async (c) => (await c.query<{ n: number }>('select count(*)::int as n from ballast.idempotency_keys')).rows[0].n);
      const cases: [string, string, RegExp][] = [
        ['empty', '', /1 to 255 characters, got 0/],
        ['256 characters', 'k'.repeat(256), /1 to 255 characters, got 256/],
        ['a tab', `${run}\tkey`, /printable ASCII.*U\+0009/],
        ['non-ASCII', `${run}-clé`, /printable ASCII \(0x20 to 0x7E\), got U\+00/], // Node sends UTF-8; the server reads latin1
        ['a broken quoted string', `"${run}`, /quoted string/],
      ];
      for (const [what, key, message] of cases) {
        const r = await post(api.url, { query: CREATE, variables: { label } }, { 'idempotency-key': key });
        assert.equal(r.status, 400, what);
        assert.match(r.body, message, what);
      }
      // Control characters other than tab never reach us: Node's HTTP parser answers 400 itself.
      const raw = await new Promise<string>((resolve, reject) => {
        const body = JSON.stringify({ query: CREATE, variables: { label } });
        const s = net.connect(Number(new URL(api.url).port), '127.0.0.1', () => {
          s.end(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: a\x01b\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        });
        let text = '';
        s.on('data', (d) => { text += d; });
        s.on('end', () => resolve(text));
        s.on('error', reject);
      });
      assert.match(raw, /^HTTP\/1\.1 400/, 'a control character: 400');
      const afterCount = await withClient(cfg.rootUrl, async (c) => (await c.query<{ n: number }>('select count(*)::int as n from ballast.idempotency_keys')).rows[0].n);
      assert.equal(afterCount, before, 'no idempotency row was written');
      assert.equal(await effects(label), 0, 'the mutation did not run');
    });

    it('a mutation listed in IDEMPOTENCY_REQUIRED_MUTATIONS without a key: 400; unlisted mutations pass', async () => {
      const label = `${run}-required`;
      const r = await post(api.url, { query: CREATE, variables: { label } });
      assert.equal(r.status, 400);
      assert.match(r.body, /createIdemEffect requires an Idempotency-Key header/);
      const viaFragment = await post(api.url, { query: `mutation($label: String!) { ...F } fragment F on Mutation { createIdemEffect(input: {idemEffect: {label: $label}}) { clientMutationId } }`, variables: { label } });
      assert.equal(viaFragment.status, 400, 'a fragment does not hide the field');
      assert.equal(await effects(label), 0);
      const unlisted = await post(api.url, { query: SLOW, variables: { label, seconds: 0 } });
      assert.equal(unlisted.status, 200);
      assert.equal(await effects(label), 1);
    });

    it('queries with a key pass through and are not stored', async () => {
      const before = await keyRows();
      const r = await post(api.url, { query: '{ __typename }' }, { 'idempotency-key': `${run}-query` });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { data: { __typename: 'Query' } });
      assert.equal(r.headers['idempotency-key'], undefined);
      assert.equal(await keyRows(), before);
    });
  });

  it('the API refuses bad idempotency settings, all of them at once', async () => {
    const p = startServer({ IDEMPOTENCY_REQUIRED_MUTATIONS: 'createFund, drop table', IDEMPOTENCY_LEASE_SECONDS: '0', IDEMPOTENCY_TTL_SECONDS: 'forever' });
    assert.equal(await p.exited, 2);
    assert.match(p.output(), /IDEMPOTENCY_REQUIRED_MUTATIONS must be a comma-separated list of GraphQL mutation names .*got "drop table"/);
    assert.match(p.output(), /IDEMPOTENCY_LEASE_SECONDS must be a whole number from 1 to 3600, got "0"/);
    assert.match(p.output(), /IDEMPOTENCY_TTL_SECONDS must be a whole number from 60 to 31536000, got "forever"/);
  });

  it('a request whose API process is killed mid-flight: once its transaction is gone a retry runs, and the effect is applied once', async () => {
    const label = `${run}-killed`;
    const key = `${run}-killed`;
    const payload = { query: SLOW, variables: { label, seconds: 2 } };
    const env = { IDEMPOTENCY_LEASE_SECONDS: '3' };
    const a = await startApi(env);
    const inFlight = post(a.url, payload, { 'idempotency-key': key }).then(() => 'answered', () => 'connection lost');
    // mid-flight: the key is held (uncommitted, in the mutation's own transaction), which is inside pg_sleep
    const sleepers = await waitFor('the mutation to be inside pg_sleep', () => withClient(cfg.rootUrl, async (c) => {
      const r = await c.query<{ pid: number }>("select pid from pg_stat_activity where wait_event = 'PgSleep' and usename = 'ballast_authenticator'");
      return r.rows.length > 0 ? r.rows.map((x) => x.pid) : undefined;
    }));
    assert.equal(await withClient(cfg.rootUrl, async (c) =>
      (await c.query<{ status: string }>('select status from ballast.idempotency_keys where key = $1', [key])).rows[0]?.status), undefined,
    'the claim is not visible before its transaction commits');
    a.proc.kill('SIGKILL');
    await a.exited;
    assert.equal(await inFlight, 'connection lost');

    const b = await startApi(env);
    try {
      // While the dead request's backend still sleeps (it notices the lost connection when pg_sleep ends),
      // its uncommitted claim makes retries wait and get 409; once it is rolled back, a retry runs.
      const reply = await waitFor('a retry to be let through', async () => {
        const r = await post(b.url, payload, { 'idempotency-key': key });
        if (r.status === 409) {
          assert.ok(Number(r.headers['retry-after']) >= 1);
          await new Promise((resolve) => setTimeout(resolve, 250));
          return undefined;
        }
        return r;
      }, 30_000);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['idempotent-replayed'], undefined, 'the retry ran the mutation');
      assert.deepEqual(JSON.parse(reply.body), { data: { slowEffect: { result: { label } } } });
      // The killed process's transaction never committed: once its backend is gone, one effect remains.
      await waitFor('the killed request\'s backend to end', () => withClient(cfg.rootUrl, async (c) =>
        (await c.query('select 1 from pg_stat_activity where pid = any($1)', [sleepers])).rows.length === 0 ? true : undefined));
      assert.equal(await effects(label), 1, 'the effect was applied once');
      const replay = await post(b.url, payload, { 'idempotency-key': key });
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(replay.body, reply.body);
      assert.equal(await effects(label), 1);
    } finally {
      await stop(b);
    }
  });
});
