// Trace context in the worker: a job queued on behalf of an API request carries the request's W3C
// `traceparent` in its payload (ballast_report_error: api/error_reports.ts). The task then runs in that
// trace: its log lines carry the request's trace id (traceId) and the task's own span id (spanId), and,
// when OpenTelemetry is on (OTEL_EXPORTER_OTLP_ENDPOINT, api/telemetry.ts), the task is a span, child of
// the request's span. Jobs without one (crontab jobs, SQL-queued ones) run as before; with OpenTelemetry
// on they get a span of a new trace.
import type { JobHelpers, Logger, Task, TaskList } from 'graphile-worker';
import type { Span } from '@opentelemetry/api';
import type { Telemetry } from '../api/telemetry.ts';
import { traceOf } from '../api/telemetry.ts';
import { continueTrace, parseTraceparent, type TraceContext } from '../api/trace_context.ts';

/** The task list with every task run in its job's trace (see above). */
export function tracedTaskList(list: TaskList, telemetry: Telemetry | null = null): TaskList {
  return Object.fromEntries(Object.entries(list).map(([name, task]) => [name, traced(name, task!, telemetry)]));
}

function traced(name: string, task: Task, telemetry: Telemetry | null): Task {
  return async (payload, helpers) => {
    const header = (payload as { traceparent?: unknown } | null)?.traceparent;
    const parent = typeof header === 'string' ? parseTraceparent(header) : undefined;
    if (!parent && !telemetry) return task(payload, helpers);
    const span: Span | null = telemetry?.startSpan(`task ${name}`, {
      kind: 'consumer',
      parent,
      attributes: { 'messaging.system': 'graphile-worker', 'messaging.operation.name': 'process', 'ballast.task': name, 'ballast.job_id': String(helpers.job.id), 'ballast.attempt': helpers.job.attempts },
    }) ?? null;
    const trace: TraceContext = span ? traceOf(span, parent?.parentSpanId) : continueTrace(typeof header === 'string' ? header : undefined);
    const logger = (helpers.logger as Logger).scope({ traceId: trace.traceId, spanId: trace.spanId } as never);
    try {
      return await task(payload, { ...helpers, logger } as JobHelpers);
    } catch (e) {
      if (span) telemetry!.fail(span, e);
      throw e;
    } finally {
      span?.end();
    }
  };
}
