// Least privilege of the example's processes: the API process gets the authenticator's URL and no other
// database login (no DATABASE_URL, no owner password), both from npm start (scripts/start.ts) and from the
// tests' startApi (test/helpers.ts); the worker gets ballast_worker_login's URL and no other login either.
// Read from /proc/<pid>/environ of the running processes.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { NOT_FOR_API, NOT_FOR_WORKER, apiEnv, workerEnv } from '../scripts/lib/config.ts';
import { KIT_ROLES } from '../src/constants.ts';
import { cfg, freePort, startApi, startNode, stop, waitFor } from './helpers.ts';

/** The environment a running process was started with (Linux). */
function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

// What a deploy's environment typically holds besides the API's own URL.
const OTHER_LOGINS = { DATABASE_URL: cfg.rootUrl, BALLAST_OWNER_PASSWORD: cfg.ownerPassword, PGPASSWORD: 'not-for-the-api', WORKER_DATABASE_URL: cfg.ownerUrl };

it('apiEnv keeps everything but other database logins, and sets AUTH_DATABASE_URL', () => {
  const env = apiEnv({ ...OTHER_LOGINS, PORT: '1', LOG_LEVEL: 'warn', AUTH_DATABASE_URL: 'postgres://someone@x/y' }, cfg.authUrl);
  assert.deepEqual(env, { PORT: '1', LOG_LEVEL: 'warn', AUTH_DATABASE_URL: cfg.authUrl });
  for (const k of NOT_FOR_API) assert.equal(k in env, false, k);
});

it('workerEnv keeps everything but other database logins, and sets WORKER_DATABASE_URL to ballast_worker_login\'s', () => {
  assert.equal(decodeURIComponent(new URL(cfg.workerUrl).username), KIT_ROLES.worker);
  const env = workerEnv({ ...OTHER_LOGINS, AUTH_DATABASE_URL: cfg.authUrl, INVALIDATION_SINKS: 'log' }, cfg.workerUrl);
  assert.deepEqual(env, { INVALIDATION_SINKS: 'log', WORKER_DATABASE_URL: cfg.workerUrl });
  for (const k of NOT_FOR_WORKER) assert.equal(k in env, false, k);
});

it('the API started by the tests\' helpers has only the authenticator\'s URL', async () => {
  const saved = Object.fromEntries(Object.keys(OTHER_LOGINS).map((k) => [k, process.env[k]]));
  Object.assign(process.env, OTHER_LOGINS);
  try {
    const api = await startApi();
    try {
      const env = environOf(api.proc.pid!);
      assert.equal(env.AUTH_DATABASE_URL !== undefined, true);
      assert.deepEqual(Object.keys(OTHER_LOGINS).filter((k) => k in env), [], 'no other database login in the API\'s environment');
    } finally {
      await stop(api);
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

it('the API started by npm start has only the authenticator\'s URL', async () => {
  const port = await freePort();
  // BALLAST_OWNER_PASSWORD is the one the local cluster uses anyway; PGPASSWORD is only there to be dropped
  const start = startNode('scripts/start.ts', { PORT: String(port), LOG_LEVEL: 'warn', BALLAST_OWNER_PASSWORD: cfg.ownerPassword, PGPASSWORD: 'not-for-the-api' });
  try {
    await waitFor('the API started by npm start', async () => {
      if (start.proc.exitCode !== null) throw new Error(`start exited ${start.proc.exitCode}: ${start.output()}`);
      return (await fetch(`http://127.0.0.1:${port}/health/ready`)).status === 200 ? true : undefined;
    }, 60_000);
    const kids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(start.proc.pid)], { encoding: 'utf8' })
      .split('\n').map((s) => Number(s.trim())).filter(Boolean);
    const api = kids.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server.ts'));
    const worker = kids.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('worker.ts'));
    assert.ok(api && worker, `api and worker run as children: ${start.output()}`);
    const env = environOf(api);
    assert.equal(env.AUTH_DATABASE_URL !== undefined, true);
    assert.deepEqual(['DATABASE_URL', 'WORKER_DATABASE_URL', 'BALLAST_OWNER_PASSWORD', 'PGPASSWORD'].filter((k) => k in env), [],
      'no other database login in the API\'s environment');
    const workerEnvironment = environOf(worker);
    assert.equal(decodeURIComponent(new URL(workerEnvironment.WORKER_DATABASE_URL).username), KIT_ROLES.worker,
      'the worker logs in as ballast_worker_login, not as the owner');
    assert.deepEqual(['DATABASE_URL', 'AUTH_DATABASE_URL', 'BALLAST_OWNER_PASSWORD', 'PGPASSWORD'].filter((k) => k in workerEnvironment), [],
      'no other database login in the worker\'s environment');
  } finally {
    start.proc.kill('SIGINT');
    await start.exited;
  }
});
