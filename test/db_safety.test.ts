// Commands that erase or write freely never reach a database by accident: npm test and npm run bench
// ignore DATABASE_URL, a test database must be named *_test, the development passwords exist only on the
// project's own cluster, and the reset hook refuses a database the project did not create. Each refusal
// happens before any connection is made (the URLs below point at a port nothing listens on).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dbConfig } from '../scripts/lib/config.ts';
import { runNode } from './helpers.ts';

const PROD = 'postgres://postgres:secret@127.0.0.1:1/production';

/** A script with the test environment's own variables removed unless the test gives them; its output combined. */
async function script(file: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const r = await runNode(file, args, { env, without: ['BALLAST_TEST', 'BALLAST_TEST_PG_DATA', 'BALLAST_TEST_PG_PORT'], timeoutMs: 30_000 });
  return { code: r.code, out: r.output };
}

describe('database safety', () => {
  it('tests and benchmarks never use DATABASE_URL', () => {
    for (const opts of [{ test: true }, { bench: true }]) {
      const cfg = dbConfig(opts, { DATABASE_URL: PROD });
      assert.equal(cfg.managed, true, JSON.stringify(opts));
      assert.doesNotMatch(cfg.rootUrl, /production/);
    }
    // a process npm test starts (BALLAST_TEST=1) finds the test database, whatever DATABASE_URL says
    assert.doesNotMatch(dbConfig({}, { BALLAST_TEST: '1', DATABASE_URL: PROD }).rootUrl, /production/);
  });

  it('a test database must be named *_test; one that is may be erased', () => {
    assert.throws(() => dbConfig({ test: true }, { BALLAST_TEST_DATABASE_URL: PROD }), /name must end in _test/);
    assert.throws(() => dbConfig({ bench: true }, { BALLAST_TEST_DATABASE_URL: PROD }), /name must end in _test/);
    const cfg = dbConfig({ test: true }, { BALLAST_TEST_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop_test' });
    assert.equal(cfg.disposable, true);
    assert.equal(cfg.dbName, 'shop_test');
    assert.match(cfg.shadowOwnerUrl, /\/shop_shadow_test$/, 'its shadow database, which graphile-migrate erases, is named for tests too');
  });

  it('against a server ballast did not create, a missing password stops the command, naming it; nothing is disposable', () => {
    assert.throws(() => dbConfig({}, { DATABASE_URL: PROD }), /BALLAST_OWNER_PASSWORD is not set/);
    assert.throws(() => dbConfig({}, { DATABASE_URL: PROD, BALLAST_OWNER_PASSWORD: 'x' }), /BALLAST_AUTHENTICATOR_PASSWORD is not set/);
    assert.throws(() => dbConfig({}, { DATABASE_URL: PROD, BALLAST_OWNER_PASSWORD: 'x', BALLAST_AUTHENTICATOR_PASSWORD: 'a' }),
      /BALLAST_WORKER_PASSWORD is not set: .*password for ballast_worker_login/);
    const cfg = dbConfig({}, { DATABASE_URL: PROD, BALLAST_OWNER_PASSWORD: 'o', BALLAST_AUTHENTICATOR_PASSWORD: 'a', BALLAST_WORKER_PASSWORD: 'w' });
    assert.equal(cfg.disposable, false);
    assert.equal(cfg.managed, false);
    assert.equal(new URL(cfg.workerUrl).username, 'ballast_worker_login', 'the worker logs in as its own role there too');
    const given = dbConfig({}, { DATABASE_URL: PROD, BALLAST_OWNER_PASSWORD: 'o', BALLAST_AUTHENTICATOR_PASSWORD: 'a', WORKER_DATABASE_URL: 'postgres://w@db/production' });
    assert.equal(given.workerUrl, 'postgres://w@db/production', 'or with the URL given instead of the password');
  });

  it('npm test refuses a BALLAST_TEST_DATABASE_URL not named *_test, before connecting', async () => {
    const r = await script('scripts/test.ts', [], { BALLAST_TEST_DATABASE_URL: PROD, DATABASE_URL: PROD });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /names database "production".*must end in _test/);
  });

  it('npm start with DATABASE_URL and no passwords stops, naming the missing setting', async () => {
    const r = await script('scripts/start.ts', [], { DATABASE_URL: PROD, BALLAST_OWNER_PASSWORD: '', BALLAST_AUTHENTICATOR_PASSWORD: '' });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /BALLAST_OWNER_PASSWORD is not set/);
  });

  it('the before-reset hook refuses a database the project did not create', async () => {
    const r = await script('scripts/gm-hook.ts', ['before-reset'], { GM_DBURL: PROD, BALLAST_DISPOSABLE: '0' });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /before-reset ends every session on production/);
  });
});
