// Makes sure the system pieces exist (PostgreSQL 15 server, pg_cron, pgTAP, pg_prove; Chromium and PgBouncer for tests), installing the
// Debian packages when we are root and apt-get is there; otherwise stops with the command that fixes it.
import fs from 'node:fs';
import { $ } from 'zx';
import { fail, log } from './output.ts';

export const PG_MAJOR = 15;
export const PG_BIN = `/usr/lib/postgresql/${PG_MAJOR}/bin`;
/** Debian's pgbouncer package puts it here (sbin: often not on a user's PATH). */
export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';

type Need = { what: string; pkg: string; present: () => boolean };

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(`${d}/${cmd}`));
}

const SERVER: Need[] = [
  { what: `PostgreSQL ${PG_MAJOR} server`, pkg: `postgresql-${PG_MAJOR}`, present: () => fs.existsSync(`${PG_BIN}/postgres`) },
  { what: 'pg_cron', pkg: `postgresql-${PG_MAJOR}-cron`, present: () => fs.existsSync(`/usr/lib/postgresql/${PG_MAJOR}/lib/pg_cron.so`) },
  { what: 'pgTAP extension', pkg: `postgresql-${PG_MAJOR}-pgtap`, present: () => fs.existsSync(`/usr/share/postgresql/${PG_MAJOR}/extension/pgtap.control`) },
];
const CLIENT: Need[] = [
  { what: 'psql', pkg: `postgresql-client-${PG_MAJOR}`, present: () => onPath('psql') },
  { what: 'pg_prove', pkg: 'pgtap', present: () => onPath('pg_prove') },
];

// Only `npm test` needs these: the admin page's browser test drives Debian's Chromium (playwright-core);
// the API's core tests run a second time through PgBouncer in transaction mode (scripts/lib/pgbouncer.ts).
const TEST_ONLY: Need[] = [
  { what: 'Chromium (browser tests)', pkg: 'chromium', present: () => fs.existsSync('/usr/bin/chromium') },
  { what: 'PgBouncer (tests through a transaction pooler)', pkg: 'pgbouncer', present: () => fs.existsSync(PGBOUNCER_BIN) },
];

/** Installs what is missing. `server` is false when DATABASE_URL names another server. */
export async function ensureSystemPackages(opts: { server: boolean; tests: boolean }): Promise<void> {
  const needs = [...(opts.server ? SERVER : []), ...CLIENT.filter((n) => opts.tests || n.pkg !== 'pgtap'), ...(opts.tests ? TEST_ONLY : [])];
  const missing = needs.filter((n) => !n.present());
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  const names = missing.map((m) => `${m.what} (${m.pkg})`).join(', ');
  const fix = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !onPath('apt-get')) {
    fail(`missing: ${names}.\n  ${isRoot ? 'apt-get is not available here.' : 'Installing needs root.'} Run:\n    sudo ${fix}`);
  }
  log(`installing missing system packages: ${pkgs.join(' ')} (apt-get; this takes a minute)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => $({ env, quiet: true, nothrow: true })`apt-get install -y --no-install-recommends ${pkgs}`;
  let r = await install();
  if (r.exitCode !== 0) {
    await $({ env, quiet: true, nothrow: true })`apt-get update`;
    r = await install();
  }
  const still = missing.filter((m) => !m.present());
  if (r.exitCode !== 0 || still.length > 0) {
    fail(`could not install ${pkgs.join(' ')} (apt-get exit ${r.exitCode}):\n${r.stderr.trim().split('\n').slice(-5).join('\n')}\n  Fix it by hand: sudo ${fix}`);
  }
  log(`installed ${pkgs.join(' ')}`);
}
