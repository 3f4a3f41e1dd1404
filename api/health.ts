// GET /health/live: the process answers. GET /health/ready: the database answers as the API's role
// and its kit is one this code works with: the code's own version, or a newer one within the
// compatibility window (below), so that a rolling deploy does not turn the old pods unready.
//
// The compatibility window. A deploy migrates the database first, then replaces pods one at a time; for
// that while, pods running the previous kit version serve against the upgraded database. Ready when:
//   - every migration this code ships is applied, under the same name (ballast.applied_migration(), the
//     newest, has this code's newest number or a higher one: the chain has no gaps, the installer
//     refuses one that differs), and
//   - ballast.version() is this code's version, or a newer one whose ballast.compatible_since() (the
//     oldest kit version whose code the database still serves, declared by the database's own kit in
//     sql/kit.sql) is at or below this code's version.
// Not ready: the database behind the code (run ballast migrate first), a different migration chain, a
// newer migration at the same version, or a newer kit that declares this code too old (a release that
// drops, renames or changes what older code uses raises compatible_since to itself).
import type { ServerResponse } from 'node:http';
import type pg from 'pg';
import { compareVersions, kitMigrations, kitVersion } from '../src/kit_files.ts';

/** The newest kit migration this code ships (migrations/NNNNNN-name.sql), as ballast.migrations names it. */
export function latestCommittedMigration(): string | null {
  return kitMigrations().at(-1)?.name ?? null;
}

export type Readiness = { ready: boolean; checks: Record<string, string> };
/** A readiness verdict, with the database's own error text for the log (never for the client: it may name hosts, users, databases). */
export type ReadinessDetail = Readiness & { detail?: string };

/** The number of a migration's name ('000002-x' → 2); none → 0. */
const migrationId = (name: string | null) => (name ? Number(name.slice(0, 6)) || 0 : 0);

type Verdict = { ok: boolean; migrations: string; compatibility?: string };

/** The compatibility window (see the top of this file) for the database's kit and this code's. */
export async function compatibility(pool: pg.Pool, applied: string | null, installed: string | null,
                                    expected: string | null, codeVersion: string): Promise<Verdict> {
  const a = migrationId(applied), e = migrationId(expected);
  const code = `this code is ballast ${codeVersion} (migrations up to ${expected ?? 'none'})`;
  if (a < e || (a === e && applied !== expected)) {
    return { ok: false, migrations: `applied ${applied ?? 'none'}, expected ${expected ?? 'none'}${a === e ? ': the migration chains differ' : ': run ballast migrate'}` };
  }
  const cmp = installed === null ? -1 : compareVersions(installed, codeVersion);
  if (cmp < 0) return { ok: false, migrations: `ballast ${installed ?? 'none'} installed, ${code}: run ballast migrate` };
  if (cmp === 0) {
    return a === e ? { ok: true, migrations: 'ok' }
      : { ok: false, migrations: `applied ${applied}, expected ${expected}: a migration this code does not know, at the same version ${codeVersion}` };
  }
  let since: string | null = null;  // a kit that cannot say (no compatible_since()) serves no older code
  try {
    since = (await pool.query<{ since: string | null }>('select ballast.compatible_since() as since')).rows[0]?.since ?? null;
  } catch {
    since = null;
  }
  const db = `the database has ballast ${installed} (migrations up to ${applied})`;
  if (since === null || compareVersions(codeVersion, since) < 0) {
    return { ok: false, migrations: `${db}, which serves code from ballast ${since ?? '(unknown)'} on; ${code}: outside the compatibility window` };
  }
  return { ok: true, migrations: 'ok', compatibility: `${db}, newer than this code (${codeVersion}); it serves code from ballast ${since} on` };
}

export async function readiness(pool: pg.Pool, expected: string | null, shuttingDown: boolean, codeVersion = kitVersion()): Promise<ReadinessDetail> {
  const checks: Record<string, string> = {};
  let detail: string | undefined;
  if (shuttingDown) checks.shutdown = 'shutting down';
  try {
    const r = await pool.query<{ applied: string | null; installed: string | null }>(
      'select ballast.applied_migration() as applied, ballast.version() as installed');
    checks.database = 'ok';
    const v = await compatibility(pool, r.rows[0]?.applied ?? null, r.rows[0]?.installed ?? null, expected, codeVersion);
    checks.migrations = v.migrations;
    if (v.compatibility) checks.compatibility = v.compatibility;
  } catch (e) {
    checks.database = DATABASE_UNAVAILABLE;
    detail = (e as Error).message;
  }
  const ready = !shuttingDown && checks.database === 'ok' && checks.migrations === 'ok';
  return detail === undefined ? { ready, checks } : { ready, checks, detail };
}

/** What /health/ready says when the database did not answer; why is in the API's log. */
export const DATABASE_UNAVAILABLE = 'unavailable (see the API log)';

/**
 * The database part of readiness, computed at most once per `cacheMs` however many probes ask (one query
 * in flight, shared): a probe storm, or anyone who can reach /health/ready, must not become a query storm.
 * Shutting down is not cached: it turns readiness off at once. A failure is logged when it first appears
 * or changes, with the database's message; the probe's answer says only "unavailable".
 */
export class ReadinessCache {
  private verdict: { at: number; value: ReadinessDetail } | null = null;
  private inFlight: Promise<ReadinessDetail> | null = null;
  private lastLogged: string | undefined;
  private readonly check: () => Promise<ReadinessDetail>;
  private readonly cacheMs: number;
  private readonly log: (detail: string) => void;

  constructor(check: () => Promise<ReadinessDetail>, cacheMs: number, log: (detail: string) => void) {
    this.check = check;
    this.cacheMs = cacheMs;
    this.log = log;
  }

  async get(shuttingDown: boolean): Promise<Readiness> {
    const v = await this.current();
    const checks = shuttingDown ? { shutdown: 'shutting down', ...v.checks } : v.checks;
    return { ready: v.ready && !shuttingDown, checks };
  }

  private current(): Promise<ReadinessDetail> {
    if (this.verdict && performance.now() - this.verdict.at < this.cacheMs) return Promise.resolve(this.verdict.value);
    this.inFlight ??= this.check()
      .catch((e: Error): ReadinessDetail => ({ ready: false, checks: { error: DATABASE_UNAVAILABLE }, detail: e.message }))
      .then((value) => {
        this.verdict = { at: performance.now(), value };
        if (value.detail !== undefined && value.detail !== this.lastLogged) this.log(value.detail);
        this.lastLogged = value.detail;
        return value;
      })
      .finally(() => { this.inFlight = null; });
    return this.inFlight;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
