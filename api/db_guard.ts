// Database availability: classifies database errors and remembers when the database is unreachable,
// so that requests get a 503 at once instead of each waiting for a connection that will not come.
// Any connection-class failure (refused, terminated, pool connect timeout, admin shutdown, starting up,
// too many connections) marks the database down; a probe (`select 1` every PROBE_MS through the pool)
// marks it up again, so the API recovers on its own when PostgreSQL is back, without a restart.
import type pg from 'pg';
import type { Logger } from 'pino';

export type DbFailure = 'unavailable' | 'timeout' | 'internal';

const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGE = /timeout exceeded when trying to connect|Connection terminated|connection error|Client was closed|Cannot use a pool after calling end/i;

/** What a database error means for the HTTP answer; null for errors that are the request's own (SQL, RLS, constraints). */
export function classifyDbError(e: unknown): DbFailure | null {
  if (!(e instanceof Error)) return null;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNAVAILABLE_ERRNO.has(code)) return 'unavailable';
    if (/^[0-9A-Z]{5}$/.test(code)) {
      if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return 'unavailable';
      if (code === '57014') return 'timeout'; // statement_timeout (or a cancel)
      if (code.startsWith('XX') || code.startsWith('58') || code.startsWith('53')) return 'internal';
      return null;
    }
  }
  return UNAVAILABLE_MESSAGE.test(e.message) ? 'unavailable' : null;
}

export class DbGuard {
  static readonly PROBE_MS = 250;
  private down = false;
  private downSince = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly pool: pg.Pool;
  private readonly logger: Logger;

  constructor(pool: pg.Pool, logger: Logger) {
    this.pool = pool;
    this.logger = logger;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Looks at a database error; marks the database down when it says the database is unreachable. */
  observe(e: unknown): DbFailure | null {
    const kind = classifyDbError(e);
    if (kind === 'unavailable' && !this.down && !this.stopped) {
      this.down = true;
      this.downSince = Date.now();
      this.logger.error({ err: e }, 'database unavailable: answering 503 until it is back');
      this.schedule();
    }
    return kind;
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.probe(), DbGuard.PROBE_MS);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    try {
      await this.pool.query('select 1');
      this.down = false;
      this.logger.warn({ downForMs: Date.now() - this.downSince }, 'database available again');
    } catch {
      if (!this.stopped) this.schedule();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
