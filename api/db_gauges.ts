// Database gauges for /metrics, read on scrape from ballast.metrics_snapshot() (which runs every
// ballast.metrics__<capability>() function in sql/; a capability adds gauges by defining one — no list
// to edit here). Results are cached for METRICS_DB_CACHE_MS and concurrent scrapes share one query, so
// scrapes cannot overload the database; while the database is down the gauges are skipped and
// ballast_db_metrics_up reads 0.
import type pg from 'pg';
import type { Logger } from 'pino';
import client from 'prom-client';
import type { DbGuard } from './db_guard.ts';

type Row = { metric: string; help: string; labels: Record<string, string | number | boolean | null>; value: number };
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class DbGauges {
  private readonly gauges = new Map<string, { gauge: client.Gauge; labelNames: string[] }>();
  private readonly up: client.Gauge;
  private readonly skipped = new Set<string>();
  private loadedAt = 0;
  private inflight: Promise<void> | null = null;
  private readonly pool: pg.Pool;
  private readonly registry: client.Registry;
  private readonly cacheMs: number;
  private readonly guard: DbGuard;
  private readonly logger: Logger;

  constructor(opts: { pool: pg.Pool; registry: client.Registry; cacheMs: number; guard: DbGuard; logger: Logger }) {
    this.pool = opts.pool;
    this.registry = opts.registry;
    this.cacheMs = opts.cacheMs;
    this.guard = opts.guard;
    this.logger = opts.logger;
    this.up = new client.Gauge({ name: 'ballast_db_metrics_up', help: '1 when the last read of the database gauges succeeded', registers: [this.registry] });
  }

  /** Brings the gauges up to date unless they were read less than cacheMs ago. */
  refresh(): Promise<void> {
    if (Date.now() - this.loadedAt < this.cacheMs) return Promise.resolve();
    this.inflight ??= this.load().finally(() => {
      this.loadedAt = Date.now();
      this.inflight = null;
    });
    return this.inflight;
  }

  private async load(): Promise<void> {
    if (this.guard.isDown) {
      this.up.set(0);
      return;
    }
    let rows: Row[];
    try {
      const c = await this.pool.connect();
      try {
        await c.query('begin');
        await c.query("set local statement_timeout = '2s'");
        rows = (await c.query<Row>('select metric, help, labels, value from ballast.metrics_snapshot()')).rows;
        await c.query('commit');
      } catch (e) {
        await c.query('rollback').catch(() => undefined);
        throw e;
      } finally {
        c.release();
      }
    } catch (e) {
      this.guard.observe(e);
      this.up.set(0);
      this.logger.warn({ err: e }, 'database gauges could not be read');
      return;
    }
    this.up.set(1);
    for (const g of this.gauges.values()) g.gauge.reset(); // a series that is gone must not linger
    for (const row of rows) {
      const g = this.gaugeFor(row);
      if (!g) continue;
      const labels = Object.fromEntries(g.labelNames.map((k) => [k, String(row.labels[k] ?? '')]));
      g.gauge.set(labels, Number(row.value));
    }
  }

  private gaugeFor(row: Row): { gauge: client.Gauge; labelNames: string[] } | null {
    const labelNames = Object.keys(row.labels ?? {}).sort();
    const known = this.gauges.get(row.metric);
    if (known) return known.labelNames.join() === labelNames.join() ? known : this.skip(row.metric, `label names ${labelNames.join(',')} differ from ${known.labelNames.join(',')}`);
    if (!METRIC_NAME.test(row.metric) || !labelNames.every((l) => LABEL_NAME.test(l))) return this.skip(row.metric, 'invalid metric or label name');
    if (this.registry.getSingleMetric(row.metric)) return this.skip(row.metric, 'name already used by an API metric');
    const gauge = new client.Gauge({ name: row.metric, help: row.help || row.metric, labelNames, registers: [this.registry] });
    const g = { gauge, labelNames };
    this.gauges.set(row.metric, g);
    return g;
  }

  private skip(metric: string, why: string): null {
    if (!this.skipped.has(metric)) {
      this.skipped.add(metric);
      this.logger.warn({ metric }, `database gauge skipped: ${why}`);
    }
    return null;
  }
}
