// preflight(): the "flip-the-switch" check before a deploy: verify_migration_success() on the database
// and /health/ready of every target, all in parallel, each with its own timeout. `ballast preflight`
// prints it and exits 1 on any failure.
import { verify } from './verify.ts';

export type PreflightResult = { target: string; ok: boolean; ms: number; detail: string };

async function timed(target: string, fn: () => Promise<{ ok: boolean; detail: string }>): Promise<PreflightResult> {
  const t = performance.now();
  try {
    const r = await fn();
    return { target, ...r, ms: Math.round(performance.now() - t) };
  } catch (e) {
    const err = e as Error;
    const detail = err.name === 'TimeoutError' ? 'timed out' : (err.cause as Error | undefined)?.message ?? err.message;
    return { target, ok: false, ms: Math.round(performance.now() - t), detail };
  }
}

export function checkTarget(base: string, timeoutMs: number): Promise<PreflightResult> {
  return timed(base, async () => {
    const r = await fetch(new URL('/health/ready', base), { signal: AbortSignal.timeout(timeoutMs) });
    const body = await r.text();
    return { ok: r.status === 200, detail: `${r.status} ${body.slice(0, 200)}` };
  });
}

export function checkDatabase(url: string, timeoutMs: number): Promise<PreflightResult> {
  return timed('database: verify_migration_success()', async () => {
    const rows = await Promise.race([
      verify(url),
      new Promise<never>((_, reject) => setTimeout(() => reject(Object.assign(new Error('timed out'), { name: 'TimeoutError' })), timeoutMs).unref()),
    ]);
    const bad = rows.filter((r) => !r.ok);
    return { ok: bad.length === 0, detail: bad.length ? `not ok: ${bad.map((b) => `${b.check_name} (${b.detail})`).join('; ')}` : `${rows.length} checks ok` };
  });
}

/** The database's checks and every target's readiness, in parallel; the database gets three timeouts. */
export async function preflight(databaseUrl: string, targets: string[], timeoutMs = 3000): Promise<PreflightResult[]> {
  for (const t of targets) {
    try { new URL(t); } catch { throw new Error(`target "${t}" is not a URL (expected e.g. http://10.0.0.5:5678)`); }
  }
  return Promise.all([checkDatabase(databaseUrl, timeoutMs * 3), ...targets.map((t) => checkTarget(t, timeoutMs))]);
}
