// npm run preflight -- --targets http://host:port,... [--timeout-ms 3000]: `ballast preflight` on the
// example's database (src/preflight.ts). Exit 1 on any failure.
import { parseArgs } from 'node:util';
import { dbConfig } from './lib/config.ts';
import { fail } from './lib/output.ts';
import { formatTable } from '../src/table.ts';
import { preflight } from '../src/preflight.ts';

const { values } = parseArgs({ options: { targets: { type: 'string', default: '' }, 'timeout-ms': { type: 'string', default: '3000' } } });
const timeoutMs = Number(values['timeout-ms']);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail(`--timeout-ms must be a positive whole number, got "${values['timeout-ms']}"`);
const targets = values.targets.split(',').map((t) => t.trim()).filter(Boolean);
let results;
try {
  results = await preflight(dbConfig().ownerUrl, targets, timeoutMs);
} catch (e) {
  fail(`--targets: ${(e as Error).message}`);
}
process.stdout.write(formatTable(['target', 'ok', 'ms', 'detail'], results.map((r) => [r.target, r.ok ? 'ok' : 'FAIL', String(r.ms), r.detail])));
const bad = results.filter((r) => !r.ok).length;
process.stdout.write(`preflight: ${results.length - bad} passed, ${bad} failed\n`);
process.exit(bad ? 1 : 0);
