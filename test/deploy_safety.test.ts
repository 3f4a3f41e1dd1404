// Deploys must not hurt the app they serve. On the test database, with real processes (the CLI as a
// user runs it, a writer as the API's role, a long transaction in another session):
//   - a deploy that changes the policy of a busy table (ballast.idempotency_keys) while a long
//     transaction holds a lock on it: the migrate waits at most its lock timeout per attempt, retries
//     with backoff and succeeds once the transaction ends; a writer loop on that table never waits much
//     longer than the lock timeout (without it, writers would queue behind the migrate until the long
//     transaction ended);
//   - one that cannot get its lock within its retries fails (exit 1), says where it waited, and
//     changes nothing;
//   - a migrate with nothing changed takes no lock on the busy tables at all;
//   - a forced re-apply of unchanged definitions takes no lock a reader or writer would queue behind,
//     on any kit relation, and re-creates no policy, trigger or view.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cfg, runNode, withClient } from './helpers.ts';

type Result = { code: number | null; out: string; err: string; ms: number };

/** `ballast <args>` as a user runs it: a real process; BALLAST_LOCK_* only when a test sets them. */
function cli(args: string[]): Promise<Result> {
  return runNode('src/cli.ts', args, { without: ['DATABASE_URL', 'BALLAST_LOCK_TIMEOUT', 'BALLAST_LOCK_RETRIES'] });
}

/** A session that holds a transaction open (with the locks it took) until release(). */
async function holdTransaction(sql: string): Promise<{ release: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: cfg.rootUrl, application_name: 'deploy-safety long transaction' });
  await c.connect();
  await c.query('begin');
  await c.query(sql);
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      await c.query('commit').catch(() => {});
      await c.end();
    },
  };
}

/** The kit's relations a writer or reader could use, of the given kinds (r, p, v, m). */
async function kitRelations(kinds: string[]): Promise<string[]> {
  return withClient(cfg.rootUrl, async (c) => (await c.query<{ r: string }>(
    `select c.oid::regclass::text as r from pg_class c
      where c.relnamespace = 'ballast'::regnamespace and c.relkind = any($1::"char"[]) order by 1`, [kinds])).rows.map((x) => x.r));
}

/** The oids of the kit's policies, triggers and views: a re-created object gets a new one. */
async function definitionOids(): Promise<string[]> {
  return withClient(cfg.rootUrl, async (c) => (await c.query<{ o: string }>(`
    select 'policy ' || p.polrelid::regclass || ' ' || p.polname || ' ' || p.oid as o from pg_policy p
      join pg_class c on c.oid = p.polrelid where c.relnamespace = 'ballast'::regnamespace
    union all
    select 'trigger ' || t.tgrelid::regclass || ' ' || t.tgname || ' ' || t.oid from pg_trigger t
      join pg_class c on c.oid = t.tgrelid where c.relnamespace = 'ballast'::regnamespace and not t.tgisinternal
    union all
    select 'view ' || c.oid::regclass || ' ' || c.oid from pg_class c where c.relnamespace = 'ballast'::regnamespace and c.relkind = 'v'
    order by 1`)).rows.map((r) => r.o));
}

const HOT = ['ballast.idempotency_keys', 'ballast.audit_log', 'ballast.cache_invalidation_inbox'];

describe('deploy safety', () => {
  const holders: { release: () => Promise<void> }[] = [];
  after(async () => {
    for (const h of holders) await h.release();
    // whatever happened, idempotency_keys gets its policy back (a no-op when it has it)
    await withClient(cfg.ownerUrl, (c) => c.query(`select ballast.owner_only_policy('ballast.idempotency_keys')`));
  });

  it('a migrate with nothing changed takes no lock on the busy tables (it completes while they are locked ACCESS EXCLUSIVE)', async () => {
    // settle: the digest of this code's sql/ is the one recorded
    const first = await cli(['migrate', '--database-url', cfg.ownerUrl, '--no-worker-schema']);
    assert.equal(first.code, 0, first.err);
    const h = await holdTransaction(`lock table ${HOT.join(', ')} in access exclusive mode`);
    holders.push(h);
    try {
      const r = await cli(['migrate', '--database-url', cfg.ownerUrl, '--no-worker-schema', '--lock-timeout', '200ms', '--lock-retries', '0']);
      assert.equal(r.code, 0, `migrate failed while ${HOT.join(', ')} were locked: ${r.err}`);
      assert.match(r.out, /is already installed; nothing to do/);
      assert.doesNotMatch(r.err, /lock not available/);
    } finally {
      await h.release();
    }
  });

  it('a forced re-apply of unchanged definitions re-creates nothing and takes no lock a reader or writer would wait for', async (t) => {
    const tables = await kitRelations(['r', 'p']);
    const views = await kitRelations(['v', 'm']);
    assert.ok(tables.length > 15 && views.length >= 4, `the kit's tables ${tables.join(', ')}, views ${views.join(', ')}`);
    const before = await definitionOids();
    // ROW EXCLUSIVE (a writer's lock) on every table: any SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE or ACCESS
    // EXCLUSIVE request (CREATE INDEX, CREATE TRIGGER, ALTER TABLE ... ROW LEVEL SECURITY, DROP/CREATE
    // POLICY) would wait for it and, with 0 retries, fail the migrate. Views and materialized views are
    // read (ACCESS SHARE, a reader's lock: CREATE OR REPLACE VIEW would wait for it); LOCK TABLE refuses
    // materialized views, and in ROW EXCLUSIVE mode the views that read the catalog.
    const h = await holdTransaction(`lock table ${tables.join(', ')} in row exclusive mode; ` +
      views.map((v) => `select from ${v} limit 0;`).join(' '));
    holders.push(h);
    let r: Result;
    try {
      r = await cli(['migrate', '--database-url', cfg.ownerUrl, '--force', '--no-worker-schema', '--lock-timeout', '200ms', '--lock-retries', '0']);
    } finally {
      await h.release();
    }
    assert.equal(r.code, 0, `a forced migrate had to wait for a lock on a kit relation: ${r.err}`);
    assert.match(r.out, /definitions applied/);
    assert.deepEqual(await definitionOids(), before, 'no policy, trigger or view was dropped and re-created');
    t.diagnostic(`forced re-apply of sql/ while ${tables.length} kit tables were locked ROW EXCLUSIVE and ${views.length} ` +
      `views and materialized views read: ${Math.round(r.ms)} ms (process included)`);
  });

  it('a migrate that cannot get its lock within its retries fails with exit 1, says why and changes nothing', async () => {
    await withClient(cfg.ownerUrl, (c) => c.query('alter policy owner_all on ballast.idempotency_keys using (1 = 1) with check (1 = 1)'));
    const h = await holdTransaction('lock table ballast.idempotency_keys in row exclusive mode');
    holders.push(h);
    let r: Result;
    try {
      r = await cli(['migrate', '--database-url', cfg.ownerUrl, '--force', '--no-worker-schema', '--lock-timeout', '100ms', '--lock-retries', '1']);
    } finally {
      await h.release();
    }
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /lock not available within 100 ms: .*; attempt 1 of 2 rolled back \(nothing changed\), trying again in/);
    assert.match(r.err, /gave up after 2 attempts: each waited more than 100 ms for a lock \(sql\/idempotency\.sql: canceling statement due to lock timeout, waiting to run: drop policy owner_all on ballast\.idempotency_keys\)\. Nothing was changed\./);
    const qual = await withClient(cfg.rootUrl, async (c) => (await c.query<{ qual: string }>(
      `select qual from pg_policies where schemaname = 'ballast' and tablename = 'idempotency_keys' and policyname = 'owner_all'`)).rows[0].qual);
    assert.equal(qual, '(1 = 1)', 'the policy is as it was: the transaction was rolled back');
  });

  it('a deploy that changes a busy table\'s policy during a long transaction: writers wait at most about the lock timeout, the migrate retries and succeeds', async (t) => {
    const LOCK_TIMEOUT_MS = 500;
    const HOLD_MS = 3000;
    const MARGIN_MS = 750;  // the rest of the transaction after it got the lock, commit, a loaded machine
    // the deploy's change: the policy of idempotency_keys differs (same meaning, other text), so sql/
    // must drop and create it, which needs ACCESS EXCLUSIVE on the table
    await withClient(cfg.ownerUrl, (c) => c.query('alter policy owner_all on ballast.idempotency_keys using (1 = 1) with check (1 = 1)'));

    // the app: a writer, as the API's role, beginning and completing idempotency keys back to back
    const scope = `deploy-safety:${Date.now()}`;
    const writer = new pg.Client({ connectionString: cfg.authUrl, application_name: 'deploy-safety writer' });
    await writer.connect();
    const waits: { at: number; ms: number }[] = [];
    const errors: string[] = [];
    let writing = true;
    const t0 = performance.now();
    const loop = (async () => {
      for (let n = 0; writing; n++) {
        for (const [sql, params] of [
          ['select outcome from ballast.idempotency_begin($1, $2, $3)', [scope, `k${n}`, 'h']],
          ['select ballast.idempotency_complete($1, $2, 200, $3)', [scope, `k${n}`, 'ok']],
        ] as const) {
          const s = performance.now();
          try {
            await writer.query(sql, [...params]);
          } catch (e) {
            errors.push((e as Error).message);
          }
          waits.push({ at: s - t0, ms: performance.now() - s });
        }
      }
    })();

    let migrate: Result;
    let releasedAt = 0;
    try {
      await new Promise((r) => setTimeout(r, 300));
      const h = await holdTransaction('lock table ballast.idempotency_keys in row exclusive mode');
      holders.push(h);
      const started = performance.now() - t0;
      const release = new Promise<void>((resolve) => setTimeout(() => {
        releasedAt = performance.now() - t0;
        h.release().then(resolve, resolve);
      }, HOLD_MS));
      migrate = await cli(['migrate', '--database-url', cfg.ownerUrl, '--force', '--no-worker-schema',
        '--lock-timeout', `${LOCK_TIMEOUT_MS}ms`, '--lock-retries', '20']);
      await release;
      await new Promise((r) => setTimeout(r, 300));
      writing = false;
      await loop;
      const retries = migrate.err.match(/lock not available within \d+ ms/g)?.length ?? 0;
      const slowest = waits.reduce((a, b) => (b.ms > a.ms ? b : a), { at: 0, ms: 0 });
      const during = waits.filter((w) => w.at >= started && w.at <= started + migrate.ms);
      t.diagnostic(`lock timeout ${LOCK_TIMEOUT_MS} ms; long transaction held ${HOLD_MS} ms; migrate: exit ${migrate.code}, ` +
        `${retries + 1} attempts (${retries} retries), ${(migrate.ms / 1000).toFixed(2)} s (process included), ended ` +
        `${((started + migrate.ms - releasedAt) / 1000).toFixed(2)} s after the long transaction`);
      t.diagnostic(`writer: ${waits.length} statements (${during.length} while the migrate ran), slowest ${slowest.ms.toFixed(0)} ms ` +
        `at ${(slowest.at / 1000).toFixed(2)} s, ${waits.filter((w) => w.ms > 100).length} over 100 ms, errors ${errors.length}`);

      assert.equal(migrate.code, 0, `migrate failed: ${migrate.err}`);
      assert.match(migrate.out, /definitions applied/);
      assert.ok(retries >= 1, `the migrate should have hit the lock timeout at least once: ${migrate.err}`);
      assert.match(migrate.err, /lock not available within 500 ms: .*idempotency_keys.*; attempt 1 of 21 rolled back \(nothing changed\), trying again in/);
      assert.ok(started + migrate.ms >= releasedAt, 'it succeeded only after the long transaction ended');
      assert.deepEqual(errors, [], 'no writer statement failed');
      assert.ok(during.length > 20, `the writer kept writing while the migrate ran: ${during.length} statements`);
      assert.ok(slowest.ms >= LOCK_TIMEOUT_MS / 2, `writers did queue behind the migrate's lock request (slowest ${slowest.ms.toFixed(0)} ms): the test tests something`);
      assert.ok(slowest.ms <= LOCK_TIMEOUT_MS + MARGIN_MS,
        `no writer statement may wait much longer than the lock timeout (${LOCK_TIMEOUT_MS} ms + ${MARGIN_MS} ms), the slowest took ${slowest.ms.toFixed(0)} ms`);
      const policy = await withClient(cfg.rootUrl, async (c) => (await c.query<{ qual: string }>(
        `select qual from pg_policies where schemaname = 'ballast' and tablename = 'idempotency_keys' and policyname = 'owner_all'`)).rows[0]);
      assert.equal(policy.qual, 'true', 'the deploy put the policy of sql/ in place');
    } finally {
      writing = false;
      await loop;
      await writer.end();
      await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.idempotency_keys where scope = $1', [scope]));
    }
  });
});
