// Audit seals with real sessions: seal_audit_log() skips a row whose transaction is still running and seals
// it once it committed (commits out of id order), verify_audit_log() names each kind of tampering done by a
// superuser with the triggers off, and retention's deletes leave a chain that still verifies.
// (pgTAP runs in one transaction, whose own rows can never be sealed: these need sessions that commit.)
// The example's worker process logs each seal's hash, so the hash leaves the database.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cfg, startNode, stop, waitFor, withClient } from './helpers.ts';
import { TASKS } from '../worker/index.ts';

const T = 'audit_seal_node_test.accounts';

async function root<R>(sql: string, params: unknown[] = []): Promise<R[]> {
  return withClient(cfg.rootUrl, async (c) => (await c.query(sql, params)).rows as R[]);
}
type Check = { check_name: string; ok: boolean; detail: string };
const checks = (rows: Check[]) => Object.fromEntries(rows.map((r) => [r.check_name, r]));
/** The seals (by id) that list an audit row. */
const sealsOf = async (id: string) =>
  (await root<{ id: string }>(`select id from ballast.audit_seals where kind = 'seal' and $1::bigint = any (ids) order by id`, [id])).map((r) => r.id);

// verify_audit_log(since => the suite's start): seals written while these tests run. Earlier test files tidy
// up their audit rows with the triggers off (test/access.test.ts), which verify rightly reports for the
// seals that covered them; those seals are older than this suite.
let since: Date;
const verify = async (c?: pg.Client) => checks(c ? (await c.query<Check>('select * from ballast.verify_audit_log($1)', [since])).rows
  : await root<Check>('select * from ballast.verify_audit_log($1)', [since]));

describe('audit seals', () => {
  before(async () => {
    since = (await root<{ t: Date }>('select now() as t'))[0].t;
    await root('drop schema if exists audit_seal_node_test cascade');
    await root('create schema audit_seal_node_test');
    await root(`create table ${T} (id int primary key, balance int not null, note text)`);
    await root(`select ballast.enable_audit($1)`, [T]);
    await root(`insert into ${T} select g, 100, 'n' from generate_series(1, 20) g`);
  });
  after(async () => {
    await root(`select ballast.disable_audit($1)`, [T]);
    await root('drop schema if exists audit_seal_node_test cascade');
  });

  it('leaves a row whose transaction is still running for a later seal, never skipping it', async () => {
    const a = new pg.Client({ connectionString: cfg.rootUrl });
    await a.connect();
    try {
      await a.query('begin');
      await a.query(`update ${T} set balance = balance - 1 where id = 1`);   // A writes first: the lower audit id
      const aId = (await a.query<{ id: string }>(`select max(id)::text as id from ballast.audit_log where table_name = $1`, [T])).rows[0].id;
      await root(`update ${T} set balance = balance + 1 where id = 2`);       // B writes later and commits first
      const bId = (await root<{ id: string }>(`select max(id)::text as id from ballast.audit_log where table_name = $1`, [T]))[0].id;
      assert.ok(BigInt(bId) > BigInt(aId), 'B holds the higher id and committed first');
      await root('select ballast.seal_audit_log()');
      assert.deepEqual(await sealsOf(aId), [], 'A\'s row is not sealed while its transaction runs');
      assert.deepEqual(await sealsOf(bId), [], 'nor is B\'s: its txid is above the running A\'s, so a later seal takes it');
      await a.query('commit');
      await root('select ballast.seal_audit_log()');
      assert.equal((await sealsOf(aId)).length, 1, 'after A commits, its row is in exactly one seal');
      assert.equal((await sealsOf(bId)).length, 1, 'and B\'s too');
    } finally {
      await a.end();
    }
    const dup = await root<{ n: string }>(`select count(*) as n from (select unnest(ids) as id from ballast.audit_seals where kind = 'seal') u group by id having count(*) > 1`);
    assert.deepEqual(dup, [], 'no row is in two seals');
    const unsealed = await root<{ n: string }>(`select count(*)::text as n from ballast.audit_log l
      where l.txid < (select max(to_txid) from ballast.audit_seals where kind = 'seal')
        and not exists (select from ballast.audit_seals s where s.kind = 'seal' and l.id = any (s.ids))`);
    assert.equal(unsealed[0].n, '0', 'every row below the last seal\'s txid bound is sealed');
    const v = await verify();
    for (const name of ['audit seal chain', 'audit rows deleted', 'audit rows altered', 'audit rows inserted after sealing']) {
      assert.equal(v[name]?.ok, true, `${name}: ${v[name]?.detail}`);
    }
  });

  it('names the seal and the row of each tampering a superuser does with the triggers off', async () => {
    await root(`update ${T} set note = 'tamper ' || id where id between 3 and 6`);
    await root('select ballast.seal_audit_log()');
    const rows = await root<{ id: string; txid: string; seal: string }>(`
      select l.id::text, l.txid::text, s.id::text as seal from ballast.audit_log l
      join ballast.audit_seals s on s.kind = 'seal' and l.id = any (s.ids)
      where l.table_name = $1 and l.op = 'UPDATE' and l.new_values ? 'note' order by l.id`, [T]);
    assert.equal(rows.length, 4, 'four sealed UPDATE rows to tamper with');
    const c = new pg.Client({ connectionString: cfg.rootUrl });
    await c.connect();
    try {
      await c.query('begin');
      await c.query('set local session_replication_role = replica');  // the append-only triggers do not fire
      await c.query('delete from ballast.audit_log where id = $1', [rows[0].id]);
      await c.query(`update ballast.audit_log set new_values = '{"note": "forged"}' where id = $1`, [rows[1].id]);
      const forged = (await c.query<{ id: string }>(`
        insert into ballast.audit_log (id, occurred_at, table_name, op, record_id, old_values, new_values, actor_role, txid)
        overriding system value
        select max(id) + 1000, now(), $1, 'UPDATE', gen_random_uuid(), '{"balance": 1}', '{"balance": 1000000}', 'ballast_admin', $2::bigint
        from ballast.audit_log returning id::text`, [T, rows[2].txid])).rows[0].id;
      const v = await verify(c);
      assert.equal(v['audit rows deleted'].ok, false);
      assert.match(v['audit rows deleted'].detail, new RegExp(`^seal ${rows[0].seal}: row ${rows[0].id} is gone`), v['audit rows deleted'].detail);
      assert.equal(v['audit rows altered'].ok, false);
      assert.match(v['audit rows altered'].detail, new RegExp(`^seal ${rows[1].seal}: row ${rows[1].id} differs`), v['audit rows altered'].detail);
      assert.equal(v['audit rows inserted after sealing'].ok, false);
      assert.match(v['audit rows inserted after sealing'].detail, new RegExp(`^seal ${rows[2].seal}: row ${forged} lies in its txid range`),
        v['audit rows inserted after sealing'].detail);
      assert.equal(v['audit seal chain'].ok, true, 'the chain itself is intact');
      // rewriting the seal to hide the deleted row breaks the chain instead
      await c.query(`update ballast.audit_seals s set ids = array_remove(s.ids, $1::bigint), row_count = s.row_count - 1,
        digests = (select array_agg(u.d order by u.i) from unnest(s.ids, s.digests) with ordinality u(id, d, i) where u.id <> $1::bigint)
        where s.id = $2`, [rows[0].id, rows[0].seal]);
      const w = await verify(c);
      assert.equal(w['audit rows deleted'].ok, true, 'the deleted row is hidden from the row check...');
      assert.equal(w['audit seal chain'].ok, false, '...but not from the chain');
      assert.match(w['audit seal chain'].detail, new RegExp(`^seal ${rows[0].seal}: `), w['audit seal chain'].detail);
      const quick = checks((await c.query<Check>('select * from ballast.verify__audit_seal()')).rows);
      assert.equal(quick['audit seals link up'].ok, false, 'verify_migration_success()\'s cheap check sees the rewritten seal too');
    } finally {
      await c.query('rollback');
      await c.end();
    }
    const v = await verify();
    assert.ok(Object.values(v).every((r) => r.ok), 'untouched again after the rollback');
  });

  it('retention deletes sealed rows on the cleanup path and what remains still verifies', async () => {
    // rows 3 days old, written as the audit trigger would (backdated with the triggers off), then sealed
    await root(`begin; set local session_replication_role = replica;
      insert into ballast.audit_log (occurred_at, table_name, op, record_id, new_values, actor_role, txid)
      select now() - interval '3 days', '${T}', 'INSERT', gen_random_uuid(), jsonb_build_object('id', 1000 + g), 'ballast_owner', txid_current()
      from generate_series(1, 30) g; commit`);
    await root('select ballast.seal_audit_log()');
    const old = Number((await root<{ n: string }>(`select count(*) as n from ballast.audit_log where occurred_at < now() - interval '2 days'`))[0].n);
    assert.ok(old >= 30, 'old sealed rows exist');
    await root(`select ballast.add_cleanup_policy('ballast.audit_log', 'occurred_at', '1 day', 10)`);
    try {
      await root(`call ballast.run_cleanup('1 minute', 'ballast.audit_log')`);
    } finally {
      await root(`select ballast.drop_cleanup_policy('ballast.audit_log')`);
    }
    const left = Number((await root<{ n: string }>(`select count(*) as n from ballast.audit_log where occurred_at < now() - interval '2 days'`))[0].n);
    assert.equal(left, 0, 'retention deleted them');
    const pruned = Number((await root<{ n: string }>(`select coalesce(sum(row_count), 0) as n from ballast.audit_seals where kind = 'prune'`))[0].n);
    assert.ok(pruned >= 30, `prune rows name the ${old} deleted sealed rows (got ${pruned})`);
    const v = await verify();
    for (const r of Object.values(v)) assert.equal(r.ok, true, `${r.check_name}: ${r.detail}`);
  });

  it('the worker logs each seal\'s hash (ballast_log_audit_seals), so it leaves the database', async () => {
    await root(`update ${T} set balance = balance + 7 where id = 7`);
    const id = (await root<{ id: string }>(`select max(id)::text as id from ballast.audit_log where table_name = $1`, [T]))[0].id;
    await root('select ballast.seal_audit_log()');  // or pg_cron's run got there first: the seal that lists the row
    const seal = (await root<{ seal_id: string; hash: string; sealed_at: Date }>(`select id::text as seal_id, encode(hash, 'hex') as hash, sealed_at
      from ballast.audit_seals where kind = 'seal' and $1::bigint = any (ids)`, [id]))[0];
    assert.ok(seal, 'the row is sealed');
    const { hash, sealed_at } = seal;
    const worker = startNode('example/worker.ts', { WORKER_DATABASE_URL: cfg.ownerUrl, LOG_LEVEL: 'info' });
    try {
      // a run scheduled 90 s after the seal reports the minute that ended 60 s before it: the one holding the seal
      await root(`select ballast_worker.add_job($1, json_build_object('_cron', json_build_object('ts', $2::timestamptz + interval '90 seconds')))`,
        [TASKS.logAuditSeals, sealed_at]);
      await waitFor('the seal\'s log line', async () => (worker.output().includes(hash) ? true : undefined));
      assert.match(worker.output(), new RegExp(`audit seal ${seal.seal_id}: \\d+ rows \\(\\d+\\.\\.\\d+\\), sha256 ${hash}`), worker.output());
    } finally {
      assert.equal(await stop(worker), 0, worker.output());
    }
  });
});
