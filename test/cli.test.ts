// The ballast command as a user runs it (bin/ballast.js): every command has --help, data commands
// answer --json, and the exit codes are the documented ones (0 ok, 1 failed or not ok, 2 bad usage).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cfg, runNode } from './helpers.ts';

/** `ballast <args>` through the package's launcher, with no DATABASE_URL but the one a test gives. */
const ballast = (args: string[], env: Record<string, string> = {}) => runNode('bin/ballast.js', args, { env, without: ['DATABASE_URL'] });

const COMMANDS = ['migrate', 'uninstall', 'print-sql', 'verify', 'status', 'alerts', 'preflight', 'version'];

describe('ballast CLI', () => {
  it('--help lists every command, and every command has its own --help', async () => {
    const top = await ballast(['--help']);
    assert.equal(top.code, 0);
    for (const c of COMMANDS) assert.match(top.out, new RegExp(`^  ${c}\\s`, 'm'));
    for (const c of COMMANDS) {
      const h = await ballast([c, '--help']);
      assert.equal(h.code, 0, `${c} --help: ${h.err}`);
      assert.match(h.out, new RegExp(`^Usage: ballast ${c}`), c);
    }
  });

  it('bad usage exits 2 and says what would be right', async () => {
    const unknown = await ballast(['migrat']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command "migrat": use migrate, uninstall, print-sql, verify, status, alerts, preflight or version/);
    const flag = await ballast(['verify', '--roles']);
    assert.equal(flag.code, 2);
    assert.match(flag.err, /verify does not take --roles/);
    const noUrl = await ballast(['status']);
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.err, /status needs --database-url URL \(or DATABASE_URL\)/);
  });

  it('verify --json: every check of verify_migration_success(), exit 0 when all are ok', async () => {
    const r = await ballast(['verify', '--json', '--database-url', cfg.ownerUrl]);
    const checks = JSON.parse(r.out) as { check_name: string; ok: boolean }[];
    assert.ok(checks.length > 50);
    assert.equal(r.code, checks.every((c) => c.ok) ? 0 : 1, r.err);
  });

  it('status --json and preflight --json answer with data; DATABASE_URL works as the default', async () => {
    const st = await ballast(['status', '--json'], { DATABASE_URL: cfg.ownerUrl });
    const parsed = JSON.parse(st.out) as { sections: { section: string }[]; failing: number };
    assert.ok(parsed.sections.some((s) => s.section === 'idempotency keys'));
    assert.equal(st.code, parsed.failing ? 1 : 0);
    const pf = await ballast(['preflight', '--json', '--database-url', cfg.ownerUrl, '--timeout-ms', '2000']);
    const results = JSON.parse(pf.out) as { target: string; ok: boolean }[];
    assert.deepEqual(results.map((x) => x.target), ['database: verify_migration_success()']);
    const bad = await ballast(['preflight', '--database-url', cfg.ownerUrl, '--targets', 'not a url']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /"not a url" is not a URL/);
  });
});
