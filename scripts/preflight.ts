// npm run preflight -- --targets http://host:port,... [--timeout-ms 3000]
// The "flip-the-switch" check before a deploy: verify_migration_success() on the database, and
// /health/ready of every target, all in parallel, each with its own timeout. Exit 1 on any failure.
import { parseArgs } from 'node:util';
import { dbConfig } from './lib/config.ts';
import { fail } from './lib/output.ts';
import { formatTable } from './lib/table.ts';
import { verify } from './verify.ts';

export type Result = { target: string; ok: boolean; ms: number; detail: string };

async function timed(target: string, fn: () => Promise<{ ok: boolean; detail: string }>): Promise<Result> {
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

export function checkTarget(base: string, timeoutMs: number): Promise<Result> {
  return timed(base, async () => {
    const r = await fetch(new URL('/health/ready', base), { signal: AbortSignal.timeout(timeoutMs) });
    const body = await r.text();
    return { ok: r.status === 200, detail: `${r.status} ${body.slice(0, 200)}` };
  });
}

export function checkDatabase(url: string, timeoutMs: number): Promise<Result> {
  return timed('database: verify_migration_success()', async () => {
    const rows = await Promise.race([
      verify(url),
      new Promise<never>((_, reject) => setTimeout(() => reject(Object.assign(new Error('timed out'), { name: 'TimeoutError' })), timeoutMs).unref()),
    ]);
    const bad = rows.filter((r) => !r.ok);
    return { ok: bad.length === 0, detail: bad.length ? `not ok: ${bad.map((b) => `${b.check_name} (${b.detail})`).join('; ')}` : `${rows.length} checks ok` };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { targets: { type: 'string', default: '' }, 'timeout-ms': { type: 'string', default: '3000' } } });
  const timeoutMs = Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail(`--timeout-ms must be a positive whole number, got "${values['timeout-ms']}"`);
  const targets = values.targets.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of targets) {
    try { new URL(t); } catch { fail(`--targets: "${t}" is not a URL (expected e.g. http://10.0.0.5:5678)`); }
  }
  const results = await Promise.all([
    checkDatabase(dbConfig().ownerUrl, timeoutMs * 3),
    ...targets.map((t) => checkTarget(t, timeoutMs)),
  ]);
  process.stdout.write(formatTable(['target', 'ok', 'ms', 'detail'], results.map((r) => [r.target, r.ok ? 'ok' : 'FAIL', String(r.ms), r.detail])));
  const bad = results.filter((r) => !r.ok).length;
  process.stdout.write(`preflight: ${results.length - bad} passed, ${bad} failed\n`);
  process.exit(bad ? 1 : 0);
}
