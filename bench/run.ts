// npm run bench -- <name> [args]: runs bench/scenarios/<name>.ts on the local cluster (or BALLAST_TEST_DATABASE_URL).
// Each scenario measures the baseline and ballast in the same run and calls report().
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ROOT, dbConfig } from '../scripts/lib/config.ts';
import * as cluster from '../scripts/lib/cluster.ts';
import { ensureSystemPackages } from '../scripts/lib/system.ts';
import { migrate } from '../scripts/lib/migrate.ts';
import { fail } from '../scripts/lib/output.ts';
import { progressPrinter, runPgbench, type BenchContext } from './lib/harness.ts';

const scenarios = fs.readdirSync(path.join(ROOT, 'bench', 'scenarios')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
const [name, ...args] = process.argv.slice(2);
if (!name || !scenarios.includes(name)) {
  fail(`${name ? `unknown benchmark "${name}"` : 'name a benchmark'}: npm run bench -- <${scenarios.join('|')}>`);
}

// Benchmarks write freely: their own cluster, or BALLAST_TEST_DATABASE_URL (a *_test database), never DATABASE_URL.
const cfg = dbConfig({ bench: true });
await ensureSystemPackages({ server: cfg.managed, tests: false });
if (cfg.managed) await cluster.up(cfg);
await migrate(cfg);

const pool = new pg.Pool({ connectionString: cfg.rootUrl, max: 4 });
const ctx: BenchContext = {
  name, cfg, args,
  progress: progressPrinter(name),
  query: (sql, params) => pool.query(sql, params as unknown[]),
  pgbench: (o) => runPgbench(cfg, o),
};
const mod = (await import(path.join(ROOT, 'bench', 'scenarios', `${name}.ts`))) as { run: (ctx: BenchContext) => Promise<boolean> };
try {
  const met = await mod.run(ctx);
  if (!met) process.stdout.write('some goals were not met (see the table)\n');
} finally {
  await pool.end();
}
