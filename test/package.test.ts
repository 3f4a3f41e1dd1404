// The package as a team installs it: npm pack → the tarball installed into an empty folder (no
// TypeScript there, Node 22) → `npx ballast --help`, `npx ballast migrate` against the test cluster, and
// a consumer script that uses only the public exports (test/package_consumer/consumer.mjs).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, withDatabase } from '../scripts/lib/config.ts';
import { cfg, withClient } from './helpers.ts';

const exec = promisify(execFile);
const DB = 'package_consumer_test'; // named for tests: the test drops and creates it
let dir = '';
let tarball = '';
// Node 22 first on the PATH: the folder's npx and the package's `#!/usr/bin/env node` bin use it
const env = () => {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` };
  for (const v of ['DATABASE_URL', 'NODE_OPTIONS', 'BALLAST_TEST', 'npm_config_prefix']) delete e[v];
  return e;
};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-package-'));
  const packed = await exec('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: ROOT, env: env(), maxBuffer: 16 << 20 });
  tarball = path.join(dir, packed.stdout.trim().split('\n').at(-1)!);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await exec('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app, env: env(), maxBuffer: 16 << 20 });
  fs.copyFileSync(path.join(ROOT, 'test', 'package_consumer', 'consumer.mjs'), path.join(app, 'consumer.mjs'));
  await withClient(cfg.rootUrl, async (c) => {
    await c.query(`drop database if exists ${DB}`);
    await c.query(`create database ${DB}`);
  });
});

after(async () => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(path.join(ROOT, 'dist'), { recursive: true, force: true }); // built by npm pack's prepack
  await withClient(cfg.rootUrl, (c) => c.query(`drop database if exists ${DB} with (force)`));
});

describe('the npm package', () => {
  it('holds compiled JavaScript, types, the SQL, LICENSE and CHANGELOG, and no TypeScript tooling or dev scripts', async () => {
    const list = (await exec('tar', ['-tzf', tarball], { maxBuffer: 16 << 20 })).stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'bin/ballast.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli.js',
      'dist/worker/index.js', 'dist/api/index.js', 'migrations/000001-ballast.sql', 'sql/ORDER', 'releases/0.1.0.sql']) {
      assert.ok(list.includes(f), `the tarball holds ${f}`);
    }
    assert.deepEqual(list.filter((f) => /^(scripts|test|example|bench|src|api|worker)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), [],
      'no TypeScript sources, dev scripts, tests or example');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'app', 'node_modules', 'ballast', 'package.json'), 'utf8'));
    assert.equal(manifest.dependencies.node, undefined, 'the published package does not depend on the node binary package');
    assert.ok(!fs.existsSync(path.join(dir, 'app', 'node_modules', 'typescript')), 'no TypeScript in the consumer');
  });

  it('npx ballast --help and npx ballast migrate work from the installed tarball', async () => {
    const app = path.join(dir, 'app');
    const help = await exec('npx', ['--no-install', 'ballast', '--help'], { cwd: app, env: env() });
    process.stdout.write(`# npx ballast --help (from the installed tarball):\n${help.stdout.replace(/^/gm, '#   ')}\n`);
    assert.match(help.stdout, /^ballast \d+\.\d+\.\d+: production safety rails for PostgreSQL/);
    const m = await exec('npx', ['--no-install', 'ballast', 'migrate', '--database-url', withDatabase(cfg.rootUrl, DB)], { cwd: app, env: env() });
    assert.match(m.stdout, /ballast \d+\.\d+\.\d+ installed \(\d+ migrations, definitions applied/);
  });

  it('a consumer script using only the public exports: PostGraphile with its own schema, an idempotent replay, a worker task', async () => {
    const app = path.join(dir, 'app');
    const authUrl = withDatabase(cfg.authUrl, DB);
    const r = await exec(process.execPath, ['consumer.mjs'], { cwd: app, env: { ...env(), ADMIN_URL: withDatabase(cfg.rootUrl, DB), AUTH_URL: authUrl }, timeout: 120_000 });
    process.stdout.write(r.stdout.replace(/^/gm, '# '));
    assert.match(r.stdout, /consumer: migrate: ballast \d+\.\d+\.\d+/);
    assert.match(r.stdout, /consumer: mutation: 200 \{"data":\{"createOrder":\{"order":\{"id":"[^"]+","item":"tea"\}\}\}\}/);
    assert.match(r.stdout, /consumer: retry: 200 replayed=true same body=true orders=1/);
    assert.match(r.stdout, /consumer: worker: tasks ballast_heartbeat, .*; ballast_heartbeat ran: true/);
  });
});
