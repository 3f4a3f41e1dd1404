// The API process, for real: health endpoints, GraphQL as the anonymous role, clean SIGTERM.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startApi, startServer, stop, waitFor, withClient, cfg } from './helpers.ts';

/** /health/ready once the verdict it caches (HEALTH_READY_CACHE_MS, 1 s) satisfies `until`. */
async function readyWhen(url: string, until: (status: number, body: { checks: Record<string, string> }) => boolean) {
  return waitFor('/health/ready to change', async () => {
    const r = await fetch(`${url}/health/ready`);
    const body = await r.json() as { checks: Record<string, string> };
    return until(r.status, body) ? { status: r.status, body } : undefined;
  }, 5000);
}
import { kitVersion } from '../src/kit_files.ts';

describe('api process', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => { api = await startApi(); });
  after(async () => { await stop(api); });

  it('answers /health/live and /health/ready', async () => {
    const live = await fetch(`${api.url}/health/live`);
    assert.equal(live.status, 200);
    const ready = await fetch(`${api.url}/health/ready`);
    assert.equal(ready.status, 200);
    const body = await ready.json() as { checks: Record<string, string> };
    assert.deepEqual(body.checks, { database: 'ok', migrations: 'ok' });
  });

  it('serves { __typename } at /graphql', async () => {
    const r = await fetch(`${api.url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { data: { __typename: 'Query' } });
  });

  it('runs queries as the anonymous visitor role, never as a superuser', async () => {
    const roles = await withClient(cfg.rootUrl, async (c) => (await c.query<{ usename: string; superuser: boolean }>(
      `select a.usename, u.usesuper as superuser from pg_stat_activity a join pg_user u on u.usesysid = a.usesysid
       where application_name = 'ballast-api' and datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`)).rows);
    assert.ok(roles.length > 0, 'the API holds at least one connection');
    assert.ok(roles.some((r) => r.usename === 'ballast_authenticator'), `API connects as the authenticator: ${JSON.stringify(roles)}`);
  });

  it('answers 404 with a JSON error for an unknown path', async () => {
    const r = await fetch(`${api.url}/nope`);
    assert.equal(r.status, 404);
    assert.match(((await r.json()) as { errors: { message: string }[] }).errors[0].message, /no route/);
  });
});

describe('api readiness', () => {
  it('is not ready when migrations are behind the code', async () => {
    const api = await startApi();
    const newest = await withClient(cfg.rootUrl, async (c) =>
      (await c.query<{ f: string }>('select name as f from ballast.migrations order by id desc limit 1')).rows[0].f);
    try {
      await withClient(cfg.rootUrl, (c) => c.query(`update ballast.migrations set name = '000000-older' where name = $1`, [newest]));
      const r = await readyWhen(api.url, (status) => status === 503);
      assert.match(JSON.stringify(r.body), /applied 000000-older, expected/);
    } finally {
      await withClient(cfg.rootUrl, (c) => c.query(`update ballast.migrations set name = $1 where name = '000000-older'`, [newest]));
      await stop(api);
    }
  });

  // A rolling deploy: the database was upgraded to a newer kit (a migration this code does not know, a
  // newer ballast.version()) while this pod still runs the previous version. Faked with rows the test
  // adds and removes; the window is the newer kit's ballast.compatible_since() (api/health.ts).
  async function withNewerKit<T>(fn: (newer: string) => Promise<T>, compatibleSince?: (newer: string) => string): Promise<T> {
    const [major, minor, patch] = kitVersion().split('-')[0].split('.').map(Number);
    const newer = `${major}.${minor}.${patch + 1}`;
    const next = await withClient(cfg.rootUrl, async (c) => (await c.query<{ id: number }>('select max(id) + 1 as id from ballast.migrations')).rows[0].id);
    const name = `${String(next).padStart(6, '0')}-from-the-future`;
    const original = await withClient(cfg.rootUrl, async (c) =>
      (await c.query<{ def: string }>(`select pg_get_functiondef('ballast.compatible_since()'::regprocedure) as def`)).rows[0].def);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('begin');
      await c.query('insert into ballast.migrations (id, name, version) values ($1, $2, $3)', [next, name, newer]);
      await c.query(`insert into ballast.installs (version, definitions_sha1) values ($1, 'deploy test')`, [newer]);
      if (compatibleSince) await c.query(`create or replace function ballast.compatible_since() returns text as $$ select '${compatibleSince(newer)}'::text $$ language sql stable`);
      await c.query('commit');
    });
    try {
      return await fn(newer);
    } finally {
      await withClient(cfg.rootUrl, async (c) => {
        await c.query('begin');
        await c.query('delete from ballast.migrations where id = $1', [next]);
        await c.query(`delete from ballast.installs where definitions_sha1 = 'deploy test'`);
        await c.query(original);
        await c.query('commit');
      });
    }
  }

  it('a newer kit within the window stays ready', async () => {
    const api = await startApi();
    try {
      await withNewerKit(async (newer) => {
        const { status, body } = await readyWhen(api.url, (_, b) => b.checks.compatibility !== undefined || b.checks.migrations !== 'ok');
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.checks.migrations, 'ok');
        assert.ok(body.checks.compatibility.startsWith(`the database has ballast ${newer} (migrations up to `) &&
                  body.checks.compatibility.includes(`newer than this code (${kitVersion()}); it serves code from ballast `), body.checks.compatibility);
      });
    } finally {
      await stop(api);
    }
  });

  it('a newer kit outside the window (it serves no code as old as this) is not ready', async () => {
    const api = await startApi();
    try {
      await withNewerKit(async (newer) => {
        const { body } = await readyWhen(api.url, (status) => status === 503);
        assert.ok(body.checks.migrations.includes(`which serves code from ballast ${newer} on; this code is ballast ${kitVersion()} `) &&
                  body.checks.migrations.endsWith('outside the compatibility window'), body.checks.migrations);
      }, (newer) => newer);
    } finally {
      await stop(api);
    }
  });

  it('stops with a clear message and exit 2 on invalid configuration', async () => {
    const p = startServer({ PORT: 'eighty', LOG_LEVEL: 'loud' });
    assert.equal(await p.exited, 2);
    assert.match(p.output(), /PORT must be a whole number from 0 to 65535, got "eighty"/);
    assert.match(p.output(), /LOG_LEVEL must be one of/);
  });

  it('exits 0 on SIGTERM', async () => {
    const api = await startApi();
    assert.equal(await stop(api), 0);
  });
});
