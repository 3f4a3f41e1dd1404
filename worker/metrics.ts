// The worker's own /metrics (Prometheus text, prom-client on a registry of its own), served on
// WORKER_METRICS_PORT so Prometheus scrapes the worker as a target of its own job: `up` of that job is how
// the alerts BallastWorkerDown / BallastWorkerAbsent see a worker that died or was never deployed. The
// queue's gauges (pending, dead jobs, heartbeat age) stay database gauges exported by the API, so they are
// counted once however many workers run. Here: process metrics, task runs by outcome and duration, jobs
// running now, and whether the LISTEN connection is up. Task labels are the task list's names (a bounded
// set), anything else is "other".
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import type { WorkerEvents } from 'graphile-worker';
import type pino from 'pino';

export type WorkerMetricsOptions = {
  /** TCP port of /metrics; 0 picks a free one (logged). */
  port: number;
  /** Listen address (default 127.0.0.1; 0.0.0.0 in a container that Prometheus scrapes from outside). */
  host?: string;
};

export class WorkerMetrics {
  readonly registry = new client.Registry();
  private readonly runs: client.Counter<'task' | 'outcome'>;
  private readonly duration: client.Histogram<'task'>;
  private readonly running: client.Gauge;
  private readonly listening: client.Gauge;
  private readonly started = new Map<string, number>();
  private readonly tasks: Set<string>;

  constructor(taskNames: string[]) {
    this.tasks = new Set(taskNames);
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    this.runs = new client.Counter({
      name: 'ballast_worker_task_runs_total', help: 'Job runs of this worker process by task and outcome (success; error: will retry; failed: attempts used up)',
      labelNames: ['task', 'outcome'], registers,
    });
    this.duration = new client.Histogram({
      name: 'ballast_worker_task_duration_seconds', help: 'How long a job run took, by task',
      labelNames: ['task'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120], registers,
    });
    this.running = new client.Gauge({ name: 'ballast_worker_jobs_in_progress', help: 'Jobs this worker process is running now', registers });
    this.listening = new client.Gauge({ name: 'ballast_worker_listen_up', help: '1 while the worker holds its LISTEN connection (new jobs arrive at once), 0 while it only polls', registers });
    // Zero from the start, so rate() and dashboards see every task before its first run.
    for (const task of this.tasks) for (const outcome of ['success', 'error', 'failed']) this.runs.labels({ task, outcome }).inc(0);
  }

  private task(name: string): string {
    return this.tasks.has(name) ? name : 'other';
  }

  /** Counts the runner's job and LISTEN events. */
  observe(events: WorkerEvents): void {
    events.on('job:start', ({ job }) => {
      this.started.set(job.id, performance.now());
      this.running.inc();
    });
    events.on('job:success', ({ job }) => this.runs.inc({ task: this.task(job.task_identifier), outcome: 'success' }));
    events.on('job:error', ({ job }) => {
      // job:failed follows when the attempts are used up; count that run once, as failed
      if (job.attempts < job.max_attempts) this.runs.inc({ task: this.task(job.task_identifier), outcome: 'error' });
    });
    events.on('job:failed', ({ job }) => this.runs.inc({ task: this.task(job.task_identifier), outcome: 'failed' }));
    events.on('job:complete', ({ job }) => {
      const t0 = this.started.get(job.id);
      this.started.delete(job.id);
      this.running.dec();
      if (t0 !== undefined) this.duration.observe({ task: this.task(job.task_identifier) }, (performance.now() - t0) / 1000);
    });
    events.on('pool:listen:success', () => this.listening.set(1));
    events.on('pool:listen:error', () => this.listening.set(0));
    events.on('pool:listen:release', () => this.listening.set(0));
  }

  /** Serves GET /metrics until close(); resolves once listening (the port is logged). */
  async serve(opts: WorkerMetricsOptions, logger: pino.Logger): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      if ((req.url ?? '').split('?')[0] !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the worker serves GET /metrics only\n');
        return;
      }
      this.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text);
      }, (e: Error) => {
        logger.warn({ err: e }, 'worker metrics could not be collected');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      });
    });
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    logger.info({ host, port: (server.address() as AddressInfo).port }, 'worker metrics listening on /metrics');
    return server;
  }
}
