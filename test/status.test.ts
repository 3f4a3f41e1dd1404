// npm run status: runs the real script against the test database; --json is parseable and lists every
// section; a failing item (a cleanup run that ended in an error) makes it exit 1 and name that item.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { cfg, runNode, withClient } from './helpers.ts';
import type { Status } from '../src/status.ts';

const status = (args: string[]) => runNode('scripts/status.ts', args);

it('status: json output, and exit 1 while a cleanup run has failed', async () => {
  const before = await status(['--json']);
  const st = JSON.parse(before.out) as Status;
  assert.deepEqual(st.sections.map((s) => s.section),
    ['invalidation queue', 'materialized views', 'pg_cron jobs', 'cleanup policies', 'idempotency keys', 'API (last 5 minutes)']);
  assert.equal(before.code, st.failing ? 1 : 0, before.err);
  const cleanupSection = st.sections.find((s) => s.section === 'cleanup policies')!;
  assert.ok(cleanupSection.available);
  assert.ok(cleanupSection.items.some((i) => i.name === 'ballast.idempotency_keys'), JSON.stringify(cleanupSection));
  assert.ok(st.sections.find((s) => s.section === 'idempotency keys')!.available);

  const id = await withClient(cfg.rootUrl, async (c) => (await c.query(
    `insert into ballast.cleanup_runs (policy, table_name, started_at, finished_at, cutoff, stopped_by, error)
     values ('ballast.idempotency_keys', 'ballast.idempotency_keys', now(), now(), now(), 'error', '57014 status test: canceling statement')
     returning id`)).rows[0].id as string);
  try {
    const failing = await status(['--json']);
    assert.equal(failing.code, 1, failing.out);
    const f = JSON.parse(failing.out) as Status;
    assert.equal(f.failing, st.failing + 1);
    const item = f.sections.find((s) => s.section === 'cleanup policies')!.items.find((i) => i.name === 'ballast.idempotency_keys')!;
    assert.equal(item.state, 'FAIL');
    assert.match(item.detail, /status test: canceling statement/);

    // The table form on a pipe: no colour codes, the FAIL row and the count.
    const table = await status([]);
    assert.equal(table.code, 1);
    assert.doesNotMatch(table.out, /\x1b\[/);
    assert.match(table.out, /cleanup policies\s+ballast\.idempotency_keys\s+FAIL\s+last run failed: 57014/);
    assert.match(table.out, /\d+ failing\n$/);
  } finally {
    await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.cleanup_runs where id = $1', [id]));
  }
  const after = await status(['--json']);
  assert.equal((JSON.parse(after.out) as Status).failing, st.failing);
});
