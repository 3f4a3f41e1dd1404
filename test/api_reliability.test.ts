// Reliability under load, with real processes: SIGTERM drains in-flight requests (none cut, new ones
// 503, exit 0); PostgreSQL stopped under load → 503 at once (no hang), /health/ready fails, and after
// PostgreSQL is back the same API process is ready again within 5 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { cfg, startApi, stop, waitFor, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { PG_BIN } from '../scripts/lib/system.ts';

const run = promisify(execFile);

describe('api shutdown under load', () => {
  before(createApiFixtures);
  after(dropApiFixtures);

  it('finishes in-flight requests, answers new ones 503, then exits 0', async () => {
    const api = await startApi({ SHUTDOWN_GRACE_MS: '15000', DB_POOL_MAX: '20' });
    const inFlight = Array.from({ length: 12 }, (_, i) =>
      gql(api.url, `{ ballastTestSleep(ms: 2000) }`, { headers: { 'x-request-id': `drain-test-${String(i).padStart(2, '0')}` } }));
    // All twelve are running in the database before the signal.
    await waitFor('the slow requests to be running', () => withClient(cfg.rootUrl, async (c) => {
      const n = (await c.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where query like '%ballast_test_sleep%' and state = 'active' and application_name = 'ballast-api'`)).rows[0].n;
      return n >= 12 ? true : undefined;
    }));
    api.proc.kill('SIGTERM');
    await waitFor('readiness to turn off', async () => ((await fetch(`${api.url}/health/ready`)).status === 503 ? true : undefined), 5000);
    const live = await fetch(`${api.url}/health/live`);
    assert.equal(live.status, 200, 'still live while draining');
    const late = await gql(api.url, '{ __typename }');
    assert.equal(late.status, 503, 'new work is refused');
    assert.equal(late.body.errors![0].extensions!.code, 'SHUTTING_DOWN');
    const results = await Promise.all(inFlight);
    for (const r of results) {
      assert.equal(r.status, 200, `an in-flight request was cut: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body.data, { ballastTestSleep: 2000 });
    }
    assert.equal(await api.exited, 0, api.output());
  });
});

describe('api when PostgreSQL stops under load', () => {
  const dataDir = process.env.BALLAST_TEST_PG_DATA;
  const asPg = (argv: string[]) => (process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv);
  const pgCtl = async (...args: string[]) => {
    const argv = asPg([`${PG_BIN}/pg_ctl`, '-D', dataDir!, ...args]);
    // start in a session of its own (like scripts/lib/cluster.ts), so no signal to the test reaches the postmaster
    const [cmd, ...rest] = args.includes('start') ? ['setsid', '--wait', ...argv] : argv;
    await run(cmd, rest);
  };
  const running = () => dataDir !== undefined && fs.existsSync(path.join(dataDir, 'postmaster.pid'));

  before(async () => { if (dataDir) await createApiFixtures(); });
  after(async () => {
    // Whatever happened, leave the cluster running for the suites after this one.
    if (dataDir && !running()) await pgCtl('-l', path.join(dataDir, 'server.log'), '-w', '-t', '60', 'start');
    if (dataDir) await dropApiFixtures();
  });

  it('answers 503 quickly, fails readiness, and is ready again within 5 s of PostgreSQL being back', { skip: dataDir ? false : 'needs the throwaway cluster of npm test (BALLAST_TEST_PG_DATA)' }, async () => {
    const connectTimeoutMs = 2000;
    const api = await startApi({ DB_CONNECT_TIMEOUT_MS: String(connectTimeoutMs), DB_POOL_MAX: '8' });
    let exit = 'still running';
    api.proc.once('exit', (code, signal) => { exit = `exited: code ${code}, signal ${signal}`; });
    try {
      type Sample = { at: number; ms: number; status: number; code?: unknown; retryAfter: string | null };
      const samples: Sample[] = [];
      let load = true;
      const workers = Array.from({ length: 8 }, async () => {
        while (load) {
          const t = Date.now();
          try {
            const r = await gql(api.url, '{ ballastTestWhoami }');
            samples.push({ at: t, ms: Date.now() - t, status: r.status, code: r.body.errors?.[0]?.extensions?.code, retryAfter: r.headers.get('retry-after') });
          } catch (e) {
            samples.push({ at: t, ms: Date.now() - t, status: 0, code: (e as Error).message, retryAfter: null });
          }
        }
      });
      await waitFor('load to be served', async () => (samples.filter((s) => s.status === 200).length >= 50 ? true : undefined));

      const stoppedAt = Date.now();
      await pgCtl('-m', 'fast', '-w', '-t', '60', 'stop');
      const histogram = () => {
        const h: Record<string, number> = {};
        for (const s of samples.filter((x) => x.at > stoppedAt)) h[`${s.status} ${String(s.code ?? '')}`.slice(0, 80)] = (h[`${s.status} ${String(s.code ?? '')}`.slice(0, 80)] ?? 0) + 1;
        return JSON.stringify(h);
      };
      await waitFor('503s while the database is down', async () => (samples.filter((s) => s.at > stoppedAt && s.status === 503).length >= 50 ? true : undefined))
        .catch((e: Error) => { throw new Error(`${e.message}; responses since the stop: ${histogram()}; api ${exit}; api output: ${api.output().slice(-3000)}`); });
      const ready = await fetch(`${api.url}/health/ready`);
      assert.equal(ready.status, 503, '/health/ready fails while the database is down');
      assert.notEqual(((await ready.json()) as { checks: { database: string } }).checks.database, 'ok');

      await pgCtl('-l', path.join(dataDir!, 'server.log'), '-w', '-t', '60', 'start');
      const startedAt = Date.now();
      await waitFor('/health/ready within 5 s of PostgreSQL being back', async () => ((await fetch(`${api.url}/health/ready`)).status === 200 ? true : undefined), 5000);
      await waitFor('queries to succeed again', async () => (samples.filter((s) => s.at > startedAt && s.status === 200).length >= 20 ? true : undefined), 5000);
      load = false;
      await Promise.all(workers);

      const during = samples.filter((s) => s.at >= stoppedAt && s.at < startedAt);
      const bad = during.filter((s) => s.status !== 200 && s.status !== 503);
      assert.deepEqual(bad.slice(0, 5), [], 'while the database is down, requests get 503 (or 200 before it went)');
      const unavailable = during.filter((s) => s.status === 503);
      assert.ok(unavailable.every((s) => s.code === 'DATABASE_UNAVAILABLE' && s.retryAfter === '1'), 'a clear error with Retry-After');
      const slowest = Math.max(...during.map((s) => s.ms));
      assert.ok(slowest < connectTimeoutMs + 3000, `no request hung past the pool timeout (slowest ${slowest} ms)`);
      assert.equal(api.proc.exitCode, null, 'the same process recovered, no restart');
    } finally {
      await stop(api);
    }
  });
});
