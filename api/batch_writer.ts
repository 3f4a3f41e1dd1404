// Write-behind buffer: rows are pushed on the response path (a push is an array append), and written
// to the database off it, every flushMs or as soon as batchRows are waiting, in batches of at most
// batchRows with one call each. When the database is down the rows stay (up to bufferMax; past that
// the oldest are dropped and counted) and are retried at the next flush. With `key`, rows with equal
// keys merge while they wait (error reports: one job per distinct error per flush, with a count).
import type { Logger } from 'pino';

export type BatchWriterOptions<T> = {
  name: string;
  flushMs: number;
  batchRows: number;
  bufferMax: number;
  write: (rows: T[]) => Promise<void>;
  logger: Logger;
  onDrop?: (n: number) => void;
  onFailure?: (e: unknown) => void;
  key?: (row: T) => string;
  merge?: (waiting: T, row: T) => void;
};

export class BatchWriter<T> {
  private rows: T[] = [];
  private byKey = new Map<string, T>();
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private readonly o: BatchWriterOptions<T>;

  constructor(o: BatchWriterOptions<T>) {
    this.o = o;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.o.flushMs);
    this.timer.unref();
  }

  get pending(): number {
    return this.rows.length;
  }

  push(row: T): void {
    if (this.o.key) {
      const k = this.o.key(row);
      const waiting = this.byKey.get(k);
      if (waiting) {
        this.o.merge?.(waiting, row);
        return;
      }
      this.byKey.set(k, row);
    }
    this.rows.push(row);
    if (this.rows.length > this.o.bufferMax) this.drop(this.rows.length - this.o.bufferMax);
    if (this.rows.length >= this.o.batchRows && !this.flushing && this.failures === 0) void this.flush();
  }

  private drop(n: number): void {
    const gone = this.rows.splice(0, n);
    if (this.o.key) for (const r of gone) this.byKey.delete(this.o.key(r));
    this.o.onDrop?.(n);
  }

  /** Writes everything waiting (in batches); concurrent calls share one flush. */
  flush(): Promise<void> {
    this.flushing ??= this.flushAll().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushAll(): Promise<void> {
    while (this.rows.length > 0) {
      const batch = this.rows.splice(0, this.o.batchRows);
      if (this.o.key) for (const r of batch) this.byKey.delete(this.o.key(r));
      try {
        await this.o.write(batch);
        if (this.failures > 0) this.o.logger.info({ writer: this.o.name, failures: this.failures }, 'write-behind buffer writes again');
        this.failures = 0;
      } catch (e) {
        // Keep the rows for the next flush (in front, they are older), within the buffer's bound.
        this.rows = batch.concat(this.rows);
        if (this.o.key) for (const r of batch) this.byKey.set(this.o.key(r), r);
        if (this.rows.length > this.o.bufferMax) this.drop(this.rows.length - this.o.bufferMax);
        this.failures += 1;
        this.o.onFailure?.(e);
        if (this.failures === 1 || this.failures % 60 === 0) {
          this.o.logger.warn({ err: e, writer: this.o.name, waiting: this.rows.length, failures: this.failures }, 'write-behind buffer could not write; keeping its rows');
        }
        return;
      }
    }
  }

  /** Stops the timer and writes what is waiting, giving up after timeoutMs. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      (async () => {
        await this.flushing;
        await this.flush();
      })(),
      new Promise<void>((resolve) => { timeout = setTimeout(resolve, timeoutMs); }),
    ]);
    clearTimeout(timeout);
    if (this.rows.length > 0) this.o.logger.warn({ writer: this.o.name, lost: this.rows.length }, 'write-behind buffer stopped with rows unwritten');
  }
}
