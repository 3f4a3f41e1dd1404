// The API behind PgBouncer in transaction mode (npm test's pass through it; skipped in the direct pass):
// its timeouts reach each request's transaction, and nothing it sets outlives the transaction on the
// server connections other clients share — no role, no timeout, no holder, no prepared statement.
// The API's core suites run in the same pass (scripts/test.ts VIA_PGBOUNCER).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cfg, pgBouncerUrl, startApi, stop, withClient } from './helpers.ts';
import { gql } from './api_fixtures.ts';

const FIXTURE = `
  create or replace function app_public.ballast_test_transaction_settings() returns json as $$
    select json_build_object('role', current_user, 'statement_timeout', current_setting('statement_timeout'),
      'lock_timeout', current_setting('lock_timeout'),
      'idle_in_transaction_session_timeout', current_setting('idle_in_transaction_session_timeout'))
  $$ language sql stable;
  grant execute on function app_public.ballast_test_transaction_settings() to ballast_anonymous;`;

/** What a server connection carries from its earlier clients, read inside one transaction. */
type Leftovers = { current_user: string; statement_timeout: string; lock_timeout: string; idle: string; owner: string | null; prepared: number; session: string[] };
const LEFTOVERS = `
  select current_user, current_setting('statement_timeout') as statement_timeout, current_setting('lock_timeout') as lock_timeout,
         current_setting('idle_in_transaction_session_timeout') as idle,
         nullif(current_setting('ballast.idempotency_owner', true), '') as owner,
         (select count(*)::int from pg_prepared_statements) as prepared,
         -- set with SET (not from the startup packet, the role or the server): pgbouncer's own tracked
         -- parameters, and @dataplan/pg's one SET per new connection (jit_optimize_above_cost = -1), are expected
         array(select name from pg_settings where source = 'session'
                 and name not in ('application_name', 'client_encoding', 'DateStyle', 'TimeZone', 'standard_conforming_strings',
                                  'jit_optimize_above_cost')
               order by name) as session`;

describe('the API through pgbouncer (transaction mode)', { skip: pgBouncerUrl ? false : 'runs in npm test\'s pass through pgbouncer' }, () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await withClient(cfg.rootUrl, (c) => c.query(FIXTURE));
    api = await startApi({ DB_STATEMENT_TIMEOUT_MS: '4321', DB_LOCK_TIMEOUT_MS: '765', DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '9876', DB_POOL_MAX: '4' });
  });
  after(async () => {
    if (api) await stop(api);
    await withClient(cfg.rootUrl, (c) => c.query('drop function if exists app_public.ballast_test_transaction_settings()'));
  });

  it('a request\'s transaction runs as the visitor with the API\'s timeouts', async () => {
    const r = await gql(api.url, '{ ballastTestTransactionSettings }');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.data?.ballastTestTransactionSettings, {
      role: 'ballast_anonymous', statement_timeout: '4321ms', lock_timeout: '765ms', idle_in_transaction_session_timeout: '9876ms',
    });
  });

  it('nothing the API set outlives its transactions on the shared server connections', async () => {
    // Traffic on every connection of the API's pool, then as many concurrent transactions through pgbouncer
    // as it has server connections open, so each is read (one transaction holds its server connection).
    const replies = await Promise.all(Array.from({ length: 40 }, () => gql(api.url, '{ ballastTestTransactionSettings }')));
    assert.ok(replies.every((r) => r.status === 200));
    const baseline = await withClient(cfg.authUrl, async (c) => (await c.query<Leftovers>(LEFTOVERS)).rows[0]);
    const servers = await withClient(cfg.rootUrl, async (c) => (await c.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where usename = 'ballast_authenticator' and datname = current_database()`)).rows[0].n);
    const clients = await Promise.all(Array.from({ length: Math.max(servers, 1) }, async () => {
      const c = new pg.Client({ connectionString: pgBouncerUrl });
      await c.connect();
      return c;
    }));
    try {
      await Promise.all(clients.map((c) => c.query('begin')));
      const seen = await Promise.all(clients.map(async (c) => (await c.query<Leftovers>(LEFTOVERS)).rows[0]));
      for (const s of seen) {
        assert.deepEqual(s, { ...baseline, session: [] }, 'a server connection as a new client finds it');
      }
    } finally {
      await Promise.all(clients.map((c) => c.query('rollback').catch(() => undefined).then(() => c.end())));
    }
  });
});
