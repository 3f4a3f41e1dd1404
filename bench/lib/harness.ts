// The benchmark harness: every scenario runs its baseline and ballast side by side in one run, then
// report() prints a table of ratios and writes bench/results/<name>.json.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { $ } from 'zx';
import pg from 'pg';
import { ROOT, type DbConfig } from '../../scripts/lib/config.ts';
import { PG_BIN } from '../../scripts/lib/system.ts';
import { formatTable } from '../../src/table.ts';
import { cpuUsPer, localPostmaster, machineTicks, serverCpuMs, stealPercent } from './cpu.ts';

export type Row = {
  metric: string; // what is measured, e.g. "single-row UPDATE TPS, 8 clients"
  baseline: number; // the thing without ballast (or the seed's approach)
  ballast: number;
  unit: string;
  /** ballast / baseline; for "lower is better" units the ratio still reads ballast/baseline. */
  goal?: { op: '>=' | '<='; ratio?: number; value?: number; text: string };
  note?: string;
};

export type BenchContext = {
  name: string;
  cfg: DbConfig;
  args: string[];
  /** Prints progress on one line (a TTY) or a line per call (CI). */
  progress: (label: string, done?: number, total?: number) => void;
  query: <T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<pg.QueryResult<T>>;
  pgbench: (opts: PgbenchOptions) => Promise<PgbenchResult>;
};

export type PgbenchOptions = { script: string; clients: number; seconds: number; user?: string; vars?: Record<string, string | number> };
export type PgbenchResult = {
  tps: number; transactions: number; latencyP50Ms: number; latencyP99Ms: number; failed: number;
  /** CPU the whole local cluster spent per transaction (µs): unlike TPS, barely moved by other load. NaN when not measurable. */
  serverCpuUsPerTx: number;
  /** Share of the machine the hypervisor stole during the run (%); NaN when unknown. */
  stealPct: number;
};

export function median(xs: number[]): number {
  return percentile(xs, 50);
}
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

export function progressPrinter(name: string): BenchContext['progress'] {
  const tty = process.stderr.isTTY;
  let last = '';
  return (label, done, total) => {
    const text = `[${name}] ${label}${total ? ` ${done}/${total}` : ''}`;
    if (tty) process.stderr.write(`\r\x1b[2K${text}`);
    else if (label !== last) process.stderr.write(`${text}\n`);
    last = label;
  };
}

/**
 * Runs pgbench with a custom script for a fixed time; latency percentiles come from its per-transaction
 * log (-l), so p50/p99 are real, not averages.
 */
export async function runPgbench(cfg: DbConfig, o: PgbenchOptions): Promise<PgbenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-pgbench-'));
  const scriptFile = path.join(dir, 'script.sql');
  fs.writeFileSync(scriptFile, o.script);
  const url = new URL(cfg.rootUrl);
  const env = { ...process.env, PGHOST: url.hostname, PGPORT: url.port || '5432', PGUSER: o.user ?? decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: cfg.dbName };
  const vars = Object.entries(o.vars ?? {}).flatMap(([k, v]) => ['-D', `${k}=${v}`]);
  const postmaster = localPostmaster(cfg);
  const cpu0 = postmaster === null ? null : serverCpuMs(postmaster);
  const ticks0 = machineTicks();
  const r = await $({ cwd: dir, env, quiet: true, nothrow: true })`${PG_BIN}/pgbench -n -c ${o.clients} -j ${Math.min(o.clients, 2)} -T ${o.seconds} -f ${scriptFile} -l --log-prefix=${path.join(dir, 'log')} ${vars}`;
  if (r.exitCode !== 0 && !/number of transactions actually processed/.test(r.stdout)) {
    throw new Error(`pgbench failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
  const lat: number[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith('log'))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const cols = line.split(' ');
      if (cols.length >= 3) lat.push(Number(cols[2]) / 1000); // microseconds → ms
    }
  }
  const cpu1 = postmaster === null ? null : serverCpuMs(postmaster);
  const stealPct = stealPercent(ticks0, machineTicks()) ?? NaN;
  fs.rmSync(dir, { recursive: true, force: true });
  const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
  const transactions = Number(/actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  return { tps, transactions, latencyP50Ms: percentile(lat, 50), latencyP99Ms: percentile(lat, 99), failed,
    serverCpuUsPerTx: cpuUsPer(cpu0, cpu1, transactions), stealPct };
}

/**
 * A row "server CPU per transaction" for two sets of pgbench runs, with the steal seen meanwhile; none when
 * the cluster is not local. TPS on a virtual machine moves with what the neighbours do; CPU per
 * transaction hardly does, so the two rows together tell cost from noise.
 */
export function serverCpuRows(metric: string, baseline: PgbenchResult[], ballast: PgbenchResult[]): Row[] {
  const b = median(baseline.map((x) => x.serverCpuUsPerTx));
  const o = median(ballast.map((x) => x.serverCpuUsPerTx));
  if (!Number.isFinite(b) || !Number.isFinite(o)) return [];
  const steal = (xs: PgbenchResult[]) => median(xs.map((x) => x.stealPct));
  const [sb, so] = [steal(baseline), steal(ballast)];
  const uneven = Math.abs(sb - so) > 5 ? '; the two sides ran under different steal, so their TPS ratio says more about the neighbours than about ballast' : '';
  return [{ metric, baseline: b, ballast: o, unit: 'µs cpu',
    note: `CPU of every server process per transaction (from /proc; median of the same runs); CPU stolen by the hypervisor meanwhile: ${fmt(sb)}% / ${fmt(so)}%${uneven}` }];
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
}

export function goalMet(row: Row): boolean | null {
  if (!row.goal) return null;
  const v = row.goal.ratio !== undefined ? row.ballast / row.baseline : row.ballast;
  const target = row.goal.ratio ?? row.goal.value!;
  return row.goal.op === '>=' ? v >= target : v <= target;
}

/** Prints the table and writes bench/results/<name>.json; returns whether every goal was met. */
export function report(name: string, rows: Row[], extra: Record<string, unknown> = {}): boolean {
  const table = formatTable(['metric', 'baseline', 'ballast', 'unit', 'ratio', 'goal', 'met'], rows.map((r) => {
    const met = goalMet(r);
    return [r.metric, fmt(r.baseline), fmt(r.ballast), r.unit, `${fmt(r.ballast / r.baseline)}x`, r.goal?.text ?? '', met === null ? '' : met ? 'yes' : 'NO'];
  }));
  process.stderr.write('\n');
  process.stdout.write(`\n${name}\n${table}`);
  for (const r of rows.filter((r) => r.note)) process.stdout.write(`  ${r.metric}: ${r.note}\n`);
  const file = path.join(ROOT, 'bench', 'results', `${name}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version };
  fs.writeFileSync(file, JSON.stringify({ name, at: new Date().toISOString(), machine,
    rows: rows.map((r) => ({ ...r, ratio: r.ballast / r.baseline, met: goalMet(r) })), ...extra }, null, 2) + '\n');
  process.stdout.write(`written ${path.relative(ROOT, file)}\n`);
  return rows.every((r) => goalMet(r) !== false);
}
