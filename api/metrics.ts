// Prometheus metrics (prom-client, a registry of our own): default process metrics, HTTP request
// duration by method / normalised route / status, GraphQL operations by name, and counters the other
// modules bump. Label values are capped: past METRICS_MAX_ROUTES routes or METRICS_MAX_OPERATIONS
// operation names, new values are counted as "other", so a client cannot blow up the series count.
import client from 'prom-client';

/** Remembers up to `max` distinct values; any further value becomes "other". */
export class LabelCap {
  private readonly seen = new Set<string>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(value);
    return value;
  }
}

const KNOWN_ROUTES = new Set(['/graphql', '/graphql/stream', '/health/live', '/health/ready', '/metrics', '/']);
const METHODS = new Set(['GET', 'POST', 'OPTIONS', 'HEAD', 'PUT', 'PATCH', 'DELETE']);
const ID_SEGMENT = /^(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|[A-Za-z0-9_-]{32,})$/i;

/** The route label of a URL: no query string, id-like segments replaced by :id, at most 4 segments. */
export function normaliseRoute(url: string | undefined): string {
  const path = (url ?? '/').split('?')[0] || '/';
  if (KNOWN_ROUTES.has(path)) return path;
  const segments = path.split('/').filter(Boolean).slice(0, 4).map((s) => (ID_SEGMENT.test(s) ? ':id' : s.slice(0, 40)));
  return '/' + segments.join('/');
}

export function normaliseMethod(method: string | undefined): string {
  return method && METHODS.has(method) ? method : 'other';
}

export class ApiMetrics {
  readonly registry = new client.Registry();
  readonly httpDuration: client.Histogram<'method' | 'route' | 'status'>;
  readonly graphqlOperations: client.Counter<'operation_name' | 'operation_type'>;
  readonly rateLimited: client.Counter<'class'>;
  readonly rateLimitDbTakes: client.Counter;
  readonly rowsDropped: client.Counter<'writer'>;
  readonly writerFailures: client.Counter<'writer'>;
  readonly dbUp: client.Gauge;
  private readonly routes: LabelCap;
  private readonly operations: LabelCap;

  constructor(opts: { maxRoutes: number; maxOperations: number; dbUp: () => boolean }) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    this.routes = new LabelCap(opts.maxRoutes);
    this.operations = new LabelCap(opts.maxOperations);
    this.httpDuration = new client.Histogram({
      name: 'http_request_duration_seconds', help: 'HTTP requests by method, normalised route and status, and how long they took',
      labelNames: ['method', 'route', 'status'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    });
    this.graphqlOperations = new client.Counter({
      name: 'graphql_operations_total', help: 'GraphQL operations by operation name (capped; "other" past the cap) and type',
      labelNames: ['operation_name', 'operation_type'], registers,
    });
    this.rateLimited = new client.Counter({
      name: 'ballast_rate_limited_total', help: 'Requests refused with 429 by the rate limiter, by operation class', labelNames: ['class'], registers,
    });
    this.rateLimitDbTakes = new client.Counter({
      name: 'ballast_rate_limit_db_takes_total', help: 'Round trips the rate limiter made to the shared buckets in PostgreSQL (one reserves a batch of tokens)', registers,
    });
    // Zero from the start, so rate() and alerts see the series before the first refusal.
    for (const cls of ['query', 'mutation']) this.rateLimited.labels({ class: cls }).inc(0);
    this.rowsDropped = new client.Counter({
      name: 'ballast_api_buffer_dropped_total', help: 'Rows the API dropped because a write-behind buffer was full (trace rows, error reports)',
      labelNames: ['writer'], registers,
    });
    this.writerFailures = new client.Counter({
      name: 'ballast_api_buffer_flush_failures_total', help: 'Failed flushes of a write-behind buffer (rows are kept and retried)',
      labelNames: ['writer'], registers,
    });
    this.dbUp = new client.Gauge({
      name: 'ballast_api_database_up', help: '1 while the API can reach the database, 0 while it answers 503', registers,
      collect() {
        this.set(opts.dbUp() ? 1 : 0);
      },
    });
  }

  observeRequest(method: string | undefined, url: string | undefined, status: number, seconds: number): void {
    this.httpDuration.observe({ method: normaliseMethod(method), route: this.routes.get(normaliseRoute(url)), status: String(status) }, seconds);
  }

  countOperation(name: string | null, type: string): void {
    this.graphqlOperations.inc({ operation_name: this.operations.get(name ?? 'anonymous'), operation_type: type });
  }
}
