// GET /health/live: the process answers. GET /health/ready: the database answers as the API's role
// and its newest applied migration is the newest committed one shipped with this code.
import type { ServerResponse } from 'node:http';
import type pg from 'pg';
import { kitMigrations } from '../src/kit_files.ts';

/** The newest kit migration this code ships (migrations/NNNNNN-name.sql), as ballast.migrations names it. */
export function latestCommittedMigration(): string | null {
  return kitMigrations().at(-1)?.name ?? null;
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
