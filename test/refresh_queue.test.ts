// The refresh queue under concurrency, for real: two processors call process_materialized_view_refreshes()
// in a loop against a slow materialized view (each refresh sleeps 0.3 s) while a writer commits rows.
// Never two refreshes of the view at once, and no request is lost: a write that commits while the view is
// being refreshed is in the view after a later refresh.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cfg, startWorker, stop, waitFor, withClient } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(c: pg.Client): Promise<void> {
  await c.query(`
    drop schema if exists rq_node cascade;
    create schema rq_node;
    create table rq_node.src (id bigint generated always as identity primary key);
    -- the uncorrelated subquery is an InitPlan: one 0.3 s sleep per refresh
    create materialized view rq_node.slow as
      select s.id from rq_node.src s where (select true from pg_sleep(0.3)) with no data;
    create unique index on rq_node.slow (id);
    select ballast.register_matview('rq_node.slow', array['rq_node.src']::regclass[], '20 milliseconds', '200 milliseconds');`);
}

async function cleanup(c: pg.Client): Promise<void> {
  await c.query(`
    do $$ begin
      if to_regclass('rq_node.slow') is not null then
        perform ballast.unregister_matview('rq_node.slow');
        delete from ballast.mv_refresh_log where matview = 'rq_node.slow'::regclass;
      end if;
    end $$;
    drop schema if exists rq_node cascade;`);
}

/** A processor: calls the procedure in a loop until stopped; returns how many calls it made. */
function processor(stop: { now: boolean }): Promise<number> {
  return withClient(cfg.ownerUrl, async (c) => {
    let calls = 0;
    while (!stop.now) {
      await c.query(`call ballast.process_materialized_view_refreshes('5 seconds')`);
      calls++;
      await sleep(20);
    }
    return calls;
  });
}

before(() => withClient(cfg.ownerUrl, setup));
after(() => withClient(cfg.ownerUrl, cleanup));

it('two processors against a slow view: no overlapping refreshes, no lost request', async () => {
  const stop = { now: false };
  const processors = [processor(stop), processor(stop)];
  try {
    await withClient(cfg.ownerUrl, async (w) => {
      // Phase 1: steady writes, one row per transaction, so requests keep arriving while refreshes run.
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        await w.query('insert into rq_node.src default values');
        await sleep(15);
      }
      // Phase 2: one more write, then a last one that commits while a refresh of the view is running.
      // Nothing is written after it: only its own request (or the processor's barrier) can bring it in.
      const inRefresh = async () => (await w.query(`select 1 from pg_locks where relation = 'rq_node.slow'::regclass
        and mode in ('ExclusiveLock', 'AccessExclusiveLock') and granted`)).rowCount! > 0;
      await waitFor('the view to be idle', async () => ((await inRefresh()) ? undefined : true), 20_000);
      await w.query('insert into rq_node.src default values');
      await waitFor('a refresh of the view to be running', async () => ((await inRefresh()) ? true : undefined), 20_000);
      const last = await w.query<{ id: string; at: Date }>(
        'insert into rq_node.src default values returning id, clock_timestamp() as at');
      const { id: lastId, at: writtenAt } = last.rows[0];
      const committedAt = (await w.query<{ at: Date }>('select clock_timestamp() as at')).rows[0].at;

      await waitFor('the last write to reach the view', async () =>
        (await w.query('select 1 from rq_node.slow where id = $1', [lastId])).rowCount ? true : undefined, 30_000);

      // It really committed while a refresh was running (otherwise this run proved less than it claims).
      const during = await w.query(`select count(*)::int as n from ballast.mv_refresh_log
        where matview = 'rq_node.slow'::regclass and started_at < $1 and finished_at > $2`, [writtenAt, committedAt]);
      assert.ok(during.rows[0].n >= 1, 'the last write committed while a refresh was running');
    });
  } finally {
    stop.now = true;
  }
  const calls = await Promise.all(processors);
  assert.ok(calls.every((n) => n > 5), `both processors kept calling: ${calls.join(', ')} calls`);

  await withClient(cfg.ownerUrl, async (c) => {
    const missing = await c.query('select count(*)::int as n from rq_node.src where id not in (select id from rq_node.slow)');
    assert.equal(missing.rows[0].n, 0, 'every committed row is in the view');

    const log = await c.query<{ started_at: Date; finished_at: Date; mode: string; ok: boolean; error: string | null }>(
      `select started_at, finished_at, mode, ok, error from ballast.mv_refresh_log
       where matview = 'rq_node.slow'::regclass order by started_at`);
    assert.ok(log.rows.length >= 4, `several refreshes ran (${log.rows.length})`);
    for (const r of log.rows) assert.ok(r.ok, `refresh failed: ${r.error}`);
    for (let i = 1; i < log.rows.length; i++) {
      assert.ok(log.rows[i].started_at.getTime() >= log.rows[i - 1].finished_at.getTime(),
        `refreshes overlap: #${i - 1} ${log.rows[i - 1].started_at.toISOString()}–${log.rows[i - 1].finished_at.toISOString()} and #${i} started ${log.rows[i].started_at.toISOString()}`);
    }
    assert.equal(log.rows[0].mode, 'plain', 'the first refresh of a never-populated view is plain');
    assert.ok(log.rows.slice(1).every((r) => r.mode === 'concurrent'), 'later refreshes are concurrent');

    const status = await c.query(`select pending_requests, refreshing_pid from ballast.matview_status where matview = 'rq_node.slow'::regclass`);
    assert.equal(status.rows[0].refreshing_pid, null, 'no processor holds the refresh lock once they stopped');
  });
});

it('a processor cancelled in the middle of a refresh leaves the view pending; its next call refreshes it', async () => {
  await withClient(cfg.ownerUrl, async (a) => {
    const pid = (await a.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
    await withClient(cfg.ownerUrl, async (other) => {
      const row = await other.query<{ id: string }>('insert into rq_node.src default values returning id');
      const id = row.rows[0].id;
      await sleep(300); // past max_delay: due
      const call = a.query(`call ballast.process_materialized_view_refreshes('5 seconds')`).then(() => 'finished', (e: Error & { code?: string }) => e.code);
      await waitFor('this processor to be refreshing the view', async () => (await other.query(
        `select 1 from pg_locks where relation = 'rq_node.slow'::regclass and pid = $1 and granted`, [pid])).rowCount ? true : undefined);
      await other.query('select pg_cancel_backend($1)', [pid]);
      assert.equal(await call, '57014', 'the call was cancelled');
      const status = await other.query(`select pending_since from ballast.matview_status where matview = 'rq_node.slow'::regclass`);
      assert.notEqual(status.rows[0].pending_since, null, 'the view is still pending');
      assert.equal((await other.query('select 1 from rq_node.slow where id = $1', [id])).rowCount, 0, 'and not refreshed yet');
      await a.query(`call ballast.process_materialized_view_refreshes('5 seconds')`);
      assert.equal((await other.query('select 1 from rq_node.slow where id = $1', [id])).rowCount, 1, 'the next call refreshed it');
      const after = await other.query(`select pending_since, refreshing_pid from ballast.matview_status where matview = 'rq_node.slow'::regclass`);
      assert.deepEqual(after.rows[0], { pending_since: null, refreshing_pid: null }, 'nothing pending, no lock left');
    });
  });
});

it('the worker reports the refreshes in its log (what npm start shows)', async () => {
  const worker = startWorker({ LOG_LEVEL: 'info' });
  try {
    await withClient(cfg.ownerUrl, (c) => c.query(
      `select ballast_worker.add_job('ballast_log_matview_refreshes', json_build_object('_cron', json_build_object('ts', now())))`));
    await waitFor('the worker to log a refresh of rq_node.slow', async () =>
      (/refreshed rq_node\.slow \(concurrent, \d+ ms\)/.test(worker.output()) ? true : undefined));
  } finally {
    assert.equal(await stop(worker), 0, worker.output());
  }
});
