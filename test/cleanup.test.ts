// cleanup, with real sessions: run_cleanup() commits per batch (CALL cannot inside pgTAP's transaction),
// stops at max_runtime and resumes, skips a policy another session is running, and never waits for a
// row a writer holds locked.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cfg, waitFor, withClient } from './helpers.ts';

const T = 'cleanup_node_test.events';

async function connect(): Promise<pg.Client & { notices: string[] }> {
  const c = new pg.Client({ connectionString: cfg.ownerUrl }) as pg.Client & { notices: string[] };
  c.notices = [];
  c.on('notice', (n) => c.notices.push(n.message ?? ''));
  await c.connect();
  return c;
}

async function owner<R>(sql: string, params: unknown[] = []): Promise<R[]> {
  return withClient(cfg.ownerUrl, async (c) => (await c.query(sql, params)).rows as R[]);
}

type Run = { id: string; rows_deleted: string; batches: number; stopped_by: string | null; finished_at: Date | null };
const runs = () => owner<Run>('select id, rows_deleted, batches, stopped_by, finished_at from ballast.cleanup_runs where policy = $1::regclass order by id', [T]);
const count = async (where: string) => Number((await owner<{ n: string }>(`select count(*) as n from ${T} where ${where}`))[0].n);

/** A policy on a fresh table: `expired` rows to delete, plus rows it must keep. */
async function setUp(expired: number, batchSize: number, pause: string): Promise<void> {
  await owner(`delete from ballast.cleanup_runs where policy = to_regclass($1)`, [T]);
  await owner(`truncate ${T}`);
  await owner(`insert into ${T} (created_at, status)
    select now() - interval '3 days' - g * interval '1 second', 'done' from generate_series(1, $1::int) g
    union all select now() - interval '3 days', 'keep' from generate_series(1, 50)
    union all select now() - interval '1 hour', 'done' from generate_series(1, 50)`, [expired]);
  await owner(`select ballast.add_cleanup_policy($1, 'created_at', '1 day', $2, '17 * * * *', 'status = ''done''', '1 hour', $3)`,
    [T, batchSize, pause]);
}

describe('run_cleanup', () => {
  before(async () => {
    await owner('drop schema if exists cleanup_node_test cascade');
    await owner('create schema cleanup_node_test');
    await owner(`create table ${T} (id bigint generated always as identity primary key, created_at timestamptz not null, status text not null)`);
    await owner(`create index on ${T} (created_at)`);
  });
  after(async () => {
    await owner(`select ballast.drop_cleanup_policy(to_regclass($1))`, [T]);
    await owner(`delete from ballast.cleanup_runs where policy = to_regclass($1)`, [T]);
    await owner('drop schema if exists cleanup_node_test cascade');
  });
  beforeEach(async () => {
    const left = await owner<{ n: string }>(`select count(*) as n from pg_locks where locktype = 'advisory' and classid = 1650551916`);
    assert.equal(Number(left[0].n), 0, 'no session holds a cleanup lock before the test');
  });

  it('deletes every expired row that matches, a committed batch at a time, and nothing else', async () => {
    await setUp(2000, 100, '20 milliseconds');
    const a = await connect();
    try {
      const call = a.query(`call ballast.run_cleanup('1 minute', $1)`, [T]);
      // another session sees rows go while the run is still open: each batch was committed
      const seen = await waitFor('a committed batch while the run is open', async () => {
        const [r] = await runs();
        const left = await count(`status = 'done' and created_at < now() - interval '1 day'`);
        return r && r.finished_at === null && left < 2000 && left > 0 ? left : undefined;
      });
      assert.ok(seen > 0 && seen < 2000);
      await call;
    } finally {
      await a.end();
    }
    const [r] = await runs();
    assert.equal(r.stopped_by, 'done');
    assert.equal(Number(r.rows_deleted), 2000);
    assert.equal(r.batches, 20);
    assert.equal(await count(`status = 'done' and created_at < now() - interval '1 day'`), 0, 'expired matching rows are gone');
    assert.equal(await count(`status = 'keep'`), 50, 'rows failing extra_condition stay');
    assert.equal(await count(`created_at > now() - interval '1 day'`), 50, 'rows inside retention stay');
  });

  it('stops at max_runtime and the next run resumes where it stopped', async () => {
    await setUp(3000, 100, '50 milliseconds');
    await owner(`call ballast.run_cleanup('300 milliseconds', $1)`, [T]);
    const first = (await runs())[0];
    assert.equal(first.stopped_by, 'max_runtime');
    assert.ok(Number(first.rows_deleted) > 0 && Number(first.rows_deleted) < 3000, `deleted ${first.rows_deleted} of 3000`);
    assert.equal(await count(`status = 'done' and created_at < now() - interval '1 day'`), 3000 - Number(first.rows_deleted));
    await owner(`call ballast.run_cleanup('1 minute', $1)`, [T]);
    const [, second] = await runs();
    assert.equal(second.stopped_by, 'done');
    assert.equal(Number(first.rows_deleted) + Number(second.rows_deleted), 3000);
    assert.equal(await count('true'), 100, 'only the rows to keep are left');
  });

  it('skips a policy that another session is running', async () => {
    await setUp(3000, 100, '100 milliseconds');
    const a = await connect();
    const b = await connect();
    try {
      const callA = a.query(`call ballast.run_cleanup('1 minute', $1)`, [T]);
      await waitFor('session A to be running the policy', async () => ((await runs())[0]?.finished_at === null ? true : undefined));
      await b.query(`call ballast.run_cleanup('1 minute', $1)`, [T]);
      assert.match(b.notices.join('\n'), /skipped, another session is cleaning it/);
      const during = await runs();
      assert.equal(during.length, 1, 'the second run recorded nothing');
      assert.equal(during[0].finished_at, null, 'the first run was still going when the second returned');
      await callA;
    } finally {
      await a.end();
      await b.end();
    }
    const done = await runs();
    assert.equal(done.length, 1);
    assert.equal(done[0].stopped_by, 'done');
    assert.equal(Number(done[0].rows_deleted), 3000);
  });

  it('passes over a row a writer holds locked instead of waiting for it', async () => {
    await setUp(500, 100, '0 seconds');
    const w = await connect();
    const a = await connect();
    try {
      await w.query('begin');
      const locked = (await w.query(`select id from ${T} where status = 'done' and created_at < now() - interval '2 days' order by created_at limit 1 for update`)).rows[0].id;
      await a.query(`set statement_timeout = '20s'`); // were it to wait, the test fails instead of hanging
      await a.query(`call ballast.run_cleanup('1 minute', $1)`, [T]);
      const [r] = await runs();
      assert.equal(r.stopped_by, 'done');
      assert.equal(Number(r.rows_deleted), 499);
      assert.equal(await count(`id = ${Number(locked)}`), 1, 'the locked row is still there');
      await w.query('rollback');
      await a.query(`call ballast.run_cleanup('1 minute', $1)`, [T]);
      assert.equal(await count(`id = ${Number(locked)}`), 0, 'the next run takes it');
    } finally {
      await w.end();
      await a.end();
    }
  });

  it('refuses to run inside a transaction block, before it takes any lock', async () => {
    await setUp(10, 100, '0 seconds');
    const a = await connect();
    try {
      await a.query('begin');
      await assert.rejects(a.query(`call ballast.run_cleanup('1 minute', $1)`, [T]), (e: Error & { code?: string }) => e.code === '2D000');
      await a.query('rollback');
      const held = await a.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and classid = 1650551916`);
      assert.equal(held.rows[0].n, 0);
    } finally {
      await a.end();
    }
  });
});
