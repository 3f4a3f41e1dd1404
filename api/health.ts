// GET /health/live: the process answers. GET /health/ready: the database answers as the API's role
// and its newest applied migration is the newest committed one shipped with this code.
import fs from 'node:fs';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import type pg from 'pg';
import { ROOT } from '../scripts/lib/config.ts';

export function latestCommittedMigration(): string | null {
  const dir = path.join(ROOT, 'migrations', 'committed');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort() : [];
  // graphile-migrate records a committed migration by its number: 000001-slug.sql is stored as 000001.sql.
  const last = files.at(-1);
  return last ? last.replace(/^(\d+).*$/, '$1.sql') : null;
}

export type Readiness = { ready: boolean; checks: Record<string, string> };

export async function readiness(pool: pg.Pool, expected: string | null, shuttingDown: boolean): Promise<Readiness> {
  const checks: Record<string, string> = {};
  if (shuttingDown) checks.shutdown = 'shutting down';
  try {
    const r = await pool.query<{ applied: string | null }>('select ballast.applied_migration() as applied');
    const applied = r.rows[0]?.applied ?? null;
    checks.database = 'ok';
    checks.migrations = applied === expected ? 'ok' : `applied ${applied ?? 'none'}, expected ${expected ?? 'none'}`;
  } catch (e) {
    checks.database = (e as Error).message;
  }
  const ready = !shuttingDown && checks.database === 'ok' && checks.migrations === 'ok';
  return { ready, checks };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
