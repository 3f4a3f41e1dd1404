// npm run db: the local cluster's failure modes each get a clear message and an exit, never a hang:
// a data folder from another PostgreSQL version, a port taken by another process, a stale pid file.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ROOT } from '../scripts/lib/config.ts';
import { freePort } from './helpers.ts';

const scratch = fs.mkdtempSync(path.join(ROOT, '.ballast', 'db-script-'));

function db(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  // these tests are about the development cluster: not the caller's database, not the test cluster
  for (const v of ['DATABASE_URL', 'BALLAST_TEST', 'BALLAST_TEST_PG_DATA', 'BALLAST_TEST_PG_PORT', 'BALLAST_TEST_DATABASE_URL']) delete childEnv[v];
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'scripts', 'db.ts'), ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000); // a hang fails the test instead of the suite
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('npm run db', () => {
  after(async () => {
    const dataDir = path.join(scratch, 'cluster');
    if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
      await db(['down'], { BALLAST_PG_DATA: dataDir });
      // The data may live behind a symlink (scripts/lib/cluster.ts, when postgres cannot reach ROOT).
      const real = fs.realpathSync(dataDir);
      if (real !== dataDir) fs.rmSync(path.dirname(real), { recursive: true, force: true });
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('refuses a data folder made by another PostgreSQL version', async () => {
    const dataDir = path.join(scratch, 'old');
    fs.mkdirSync(dataDir);
    fs.writeFileSync(path.join(dataDir, 'PG_VERSION'), '14\n');
    const r = await db(['up'], { BALLAST_PG_DATA: dataDir, BALLAST_PG_PORT: String(await freePort()) });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /was made by PostgreSQL 14; ballast runs PostgreSQL 15/);
  });

  it('says which port is taken instead of starting', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await db(['up'], { BALLAST_PG_DATA: path.join(scratch, 'cluster'), BALLAST_PG_PORT: String(port) });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`port ${port} is taken by another process`));
    } finally {
      blocker.close();
    }
  });

  it('removes a stale pid file and starts', async () => {
    const dataDir = path.join(scratch, 'cluster');
    assert.ok(fs.existsSync(path.join(dataDir, 'PG_VERSION')), 'the previous test initialised the cluster');
    const real = fs.realpathSync(dataDir);
    fs.writeFileSync(path.join(real, 'postmaster.pid'), '999999\n');
    const env = { BALLAST_PG_DATA: dataDir, BALLAST_PG_PORT: String(await freePort()) };
    const up = await db(['up'], env);
    assert.equal(up.code, 0, up.out);
    assert.match(up.out, /removing stale .*postmaster\.pid \(process 999999 is not running/);
    const status = await db(['status'], env);
    assert.match(status.out, /running on 127\.0\.0\.1/);
    const down = await db(['down'], env);
    assert.equal(down.code, 0, down.out);
  });
});
