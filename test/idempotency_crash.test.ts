// Exactly once across crashes, with real processes: a keyed mutation's claim, statements and stored response
// commit in one transaction (api/middleware/idempotency.ts), so an API process SIGKILLed at any point of the
// request leaves either nothing (the retry runs) or the stored response (the retry replays it), and the
// effect is applied once either way. The API kills itself at the named point (api/crash_points.ts:
// BALLAST_TEST_CRASH_AT, honoured only with BALLAST_TEST_HOOKS=1).
// Also: a holder that fails with a 5xx rolls its claim back and the duplicate waiting on it runs; several
// mutation fields in one operation share the one transaction, each field behind its own savepoint.
// The countable side effect is a fixture made here, as the superuser, before the APIs start.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CRASH_POINTS } from '../api/crash_points.ts';
import { cfg, postGraphQL, startApi, stop, waitFor, withClient, type Reply } from './helpers.ts';

const run = `idem-crash-${randomUUID().slice(0, 8)}`;

const FIXTURE = `
  create table app_public.idem_crash_effects (
    id serial primary key,
    label text not null check (length(label) <= 100)
  );
  create table app_public.idem_crash_gates (label text primary key);
  alter table app_public.idem_crash_effects enable row level security;
  alter table app_public.idem_crash_effects force row level security;
  create policy idem_crash_effects_anonymous on app_public.idem_crash_effects for all to ballast_anonymous using (true) with check (true);
  grant select, insert on app_public.idem_crash_effects to ballast_anonymous;
  grant select on app_public.idem_crash_gates to ballast_anonymous;
  grant usage on sequence app_public.idem_crash_effects_id_seq to ballast_anonymous;
  -- sleeps 3 s while a gate row with its label exists, then inserts the effect
  create function app_public.gated_crash_effect(label text) returns app_public.idem_crash_effects as $$
  declare
    r app_public.idem_crash_effects;
  begin
    if exists (select 1 from app_public.idem_crash_gates g where g.label = gated_crash_effect.label) then
      perform pg_sleep(3);
    end if;
    insert into app_public.idem_crash_effects (label) values (label) returning * into r;
    return r;
  end;
  $$ language plpgsql volatile;
  grant execute on function app_public.gated_crash_effect(text) to ballast_anonymous;
  -- what a keyed mutation's statements run with
  create function app_public.idem_crash_settings() returns jsonb as $$
    select jsonb_build_object('role', current_user, 'statement_timeout', current_setting('statement_timeout'),
      'lock_timeout', current_setting('lock_timeout'), 'request_id', current_setting('request.id', true))
  $$ language sql volatile;
  grant execute on function app_public.idem_crash_settings() to ballast_anonymous;`;
const DROP_FIXTURE = `
  drop function if exists app_public.idem_crash_settings();
  drop function if exists app_public.gated_crash_effect(text);
  drop table if exists app_public.idem_crash_effects;
  drop table if exists app_public.idem_crash_gates;`;

// two mutation fields in one operation: both run in the request's one transaction
const TWO = `mutation($a: String!, $b: String!) {
  a: createIdemCrashEffect(input: {idemCrashEffect: {label: $a}}) { idemCrashEffect { label } }
  b: createIdemCrashEffect(input: {idemCrashEffect: {label: $b}}) { idemCrashEffect { label } }
}`;
const GATED = 'mutation($label: String!) { gatedCrashEffect(input: {label: $label}) { result { label } } }';

const post = postGraphQL;

async function effects(label: string): Promise<number> {
  return withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ n: number }>('select count(*)::int as n from app_public.idem_crash_effects where label = $1', [label])).rows[0].n);
}

async function keyRow(key: string): Promise<{ status: string } | undefined> {
  return withClient(cfg.rootUrl, async (c) =>
    (await c.query<{ status: string }>('select status from ballast.idempotency_keys where key = $1', [key])).rows[0]);
}

/** No backend of the authenticator left in a transaction (a killed API's transaction has been rolled back). */
async function noOpenTransactions(): Promise<void> {
  await waitFor('the killed API\'s transaction to end', () => withClient(cfg.rootUrl, async (c) =>
    (await c.query("select 1 from pg_stat_activity where usename = 'ballast_authenticator' and state like 'idle in transaction%'")).rows.length === 0 ? true : undefined));
}

/** Retries until the answer is not a 409 (a duplicate still waiting on an open transaction). */
async function retry(url: string, payload: unknown, key: string): Promise<Reply> {
  return waitFor('a retry to be let through', async () => {
    const r = await post(url, payload, { 'idempotency-key': key });
    return r.status === 409 ? undefined : r;
  }, 30_000);
}

describe('idempotency keys across crashes', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await withClient(cfg.rootUrl, async (c) => { await c.query(DROP_FIXTURE); await c.query(FIXTURE); });
    // The API the retries go to. Its crash point is set but not armed (no BALLAST_TEST_HOOKS=1): every
    // retry through it also shows that BALLAST_TEST_CRASH_AT alone does nothing.
    api = await startApi({ BALLAST_TEST_CRASH_AT: 'before-claim' });
  });
  after(async () => {
    await stop(api);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query(DROP_FIXTURE);
      await c.query("delete from ballast.idempotency_keys where key like $1 || '%'", [run]);
    });
  });

  for (const point of CRASH_POINTS) {
    it(`SIGKILL ${point}: a retry ${point === 'after-commit' ? 'replays the stored response' : 'runs the mutation'}, and each effect is applied exactly once`, async () => {
      const key = `${run}-${point}`;
      const payload = { query: TWO, variables: { a: `${key}-a`, b: `${key}-b` } };
      const doomed = await startApi({ BALLAST_TEST_HOOKS: '1', BALLAST_TEST_CRASH_AT: point });
      const lost = await post(doomed.url, payload, { 'idempotency-key': key }).then((r) => `answered ${r.status} ${r.body}`, () => 'connection lost');
      assert.equal(lost, 'connection lost', 'the process died before answering');
      await doomed.exited;
      assert.equal(doomed.proc.signalCode, 'SIGKILL');
      await noOpenTransactions();
      const committed = point === 'after-commit';
      assert.equal((await keyRow(key))?.status, committed ? 'completed' : undefined,
        committed ? 'killed after the commit: the response is stored' : 'killed before the commit: the claim rolled back with everything else');
      assert.equal(await effects(`${key}-a`), committed ? 1 : 0);
      assert.equal(await effects(`${key}-b`), committed ? 1 : 0);

      const reply = await retry(api.url, payload, key);
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.headers['idempotent-replayed'], committed ? 'true' : undefined);
      assert.deepEqual(JSON.parse(reply.body), { data: {
        a: { idemCrashEffect: { label: `${key}-a` } }, b: { idemCrashEffect: { label: `${key}-b` } } } });
      assert.equal(await effects(`${key}-a`), 1, 'the first field\'s effect, once');
      assert.equal(await effects(`${key}-b`), 1, 'the second field\'s effect, once');
      const again = await post(api.url, payload, { 'idempotency-key': key });
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.body, reply.body);
      assert.equal(await effects(`${key}-a`), 1);
    });
  }

  it('a holder that fails with a 5xx rolls its claim back: of the duplicates waiting on it (same process and another), one runs and one replays', async () => {
    const label = `${run}-rolled-back`;
    const payload = { query: GATED, variables: { label } };
    await withClient(cfg.rootUrl, (c) => c.query('insert into app_public.idem_crash_gates values ($1)', [label]));
    // The first request sleeps 3 s behind the gate and hits the 1 s statement_timeout: 504, rolled back.
    const slow = await startApi({ DB_STATEMENT_TIMEOUT_MS: '1000', IDEMPOTENCY_LOCK_WAIT_MS: '5000' });
    const other = await startApi({ IDEMPOTENCY_LOCK_WAIT_MS: '5000' });
    try {
      const first = post(slow.url, payload, { 'idempotency-key': label });
      await waitFor('the first request to be inside pg_sleep', () => withClient(cfg.rootUrl, async (c) =>
        (await c.query("select 1 from pg_stat_activity where wait_event = 'PgSleep' and usename = 'ballast_authenticator'")).rows.length > 0 ? true : undefined));
      const sameProcess = post(slow.url, payload, { 'idempotency-key': label });
      const otherProcess = post(other.url, payload, { 'idempotency-key': label });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await withClient(cfg.rootUrl, (c) => c.query('delete from app_public.idem_crash_gates where label = $1', [label]));
      const [r1, r2, r3] = await Promise.all([first, sameProcess, otherProcess]);
      assert.equal(r1.status, 504, `the first hit statement_timeout: ${r1.body}`);
      const dups = [r2, r3];
      assert.ok(dups.every((r) => r.status === 200), `the duplicates: ${dups.map((r) => `${r.status} ${r.body}`).join(' | ')}`);
      assert.equal(dups.filter((r) => r.headers['idempotent-replayed'] === undefined).length, 1, 'exactly one duplicate ran it');
      assert.equal(dups.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 1, 'the other replayed it');
      assert.equal(r2.body, r3.body);
      assert.deepEqual(JSON.parse(r2.body), { data: { gatedCrashEffect: { result: { label } } } });
      assert.equal(await effects(label), 1);
    } finally {
      await Promise.all([stop(slow), stop(other)]);
    }
  });

  it('a keyed mutation\'s statements run as the visitor, with the API\'s timeouts (not the claim\'s lock wait) and the request id', async () => {
    const r = await post(api.url, { query: 'mutation { idemCrashSettings(input: {}) { result } }' }, { 'idempotency-key': `${run}-settings` });
    assert.equal(r.status, 200, r.body);
    const got = (JSON.parse(r.body) as { data: { idemCrashSettings: { result: Record<string, unknown> } } }).data.idemCrashSettings.result;
    assert.equal(got.role, 'ballast_anonymous');
    assert.equal(got.statement_timeout, '15s', 'DB_STATEMENT_TIMEOUT_MS (default 15000)');
    assert.equal(got.lock_timeout, '5s', 'DB_LOCK_TIMEOUT_MS (default 5000), not IDEMPOTENCY_LOCK_WAIT_MS');
    assert.equal(got.request_id, r.headers['x-request-id']);
  });

  it('several mutation fields in one operation: one transaction, each field behind a savepoint (a failed field rolls back alone, the rest is stored and replayed)', async () => {
    const key = `${run}-partial`;
    const payload = { query: TWO, variables: { a: `${key}-a`, b: `${key}-${'x'.repeat(120)}` } }; // b violates the check
    const first = await post(api.url, payload, { 'idempotency-key': key });
    assert.equal(first.status, 200);
    const json = JSON.parse(first.body) as { data: { a: unknown; b: unknown }; errors: { path: string[] }[] };
    assert.deepEqual(json.data, { a: { idemCrashEffect: { label: `${key}-a` } }, b: null });
    assert.deepEqual(json.errors.map((e) => e.path), [['b']]);
    assert.equal(await effects(`${key}-a`), 1);
    const again = await post(api.url, payload, { 'idempotency-key': key });
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body, first.body);
    assert.equal(await effects(`${key}-a`), 1);
    assert.equal((await keyRow(key))?.status, 'completed');
  });
});
