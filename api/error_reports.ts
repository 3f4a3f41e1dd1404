// Async error tracking: a 5xx response becomes a graphile-worker job `report_error`
// (worker/tasks/report_error.ts posts it to ERROR_REPORT_URL with retries). The response never waits:
// reports wait in a write-behind buffer, equal errors (status, route, code, operation) merge into one
// report with a count per flush, and ballast.enqueue_error_reports(jsonb) queues a batch in one call.
// While the database is down the reports wait in the buffer and are queued when it is back.
// Each report carries its first request's traceparent (and the first and last trace ids), so the worker
// logs and traces the job in the request's trace.
import type pg from 'pg';
import type { Logger } from 'pino';
import { BatchWriter } from './batch_writer.ts';
import type { ApiMetrics } from './metrics.ts';

export type ErrorReport = {
  status: number;
  code: string;
  message: string;
  method: string;
  endpoint: string;
  operation_name: string | null;
  first_request_id: string;
  last_request_id: string;
  /** The first request's W3C trace context: the worker's report_error job continues its trace (worker/trace.ts). */
  traceparent: string;
  first_trace_id: string;
  last_trace_id: string;
  first_at: string;
  last_at: string;
  count: number;
};

export function makeErrorReporter(pool: pg.Pool, metrics: ApiMetrics, logger: Logger): BatchWriter<ErrorReport> {
  return new BatchWriter<ErrorReport>({
    name: 'error_reports',
    flushMs: 1000,
    batchRows: 100,
    bufferMax: 1000,
    logger,
    key: (r) => `${r.status}|${r.method}|${r.endpoint}|${r.code}|${r.operation_name ?? ''}`,
    merge: (waiting, r) => {
      waiting.count += r.count;
      waiting.last_request_id = r.last_request_id;
      waiting.last_trace_id = r.last_trace_id;
      waiting.last_at = r.last_at;
    },
    write: async (rows) => {
      await pool.query({ name: 'ballast_enqueue_error_reports', text: 'select ballast.enqueue_error_reports($1::jsonb)', values: [JSON.stringify(rows)] });
    },
    onDrop: (n) => metrics.rowsDropped.inc({ writer: 'error_reports' }, n),
    onFailure: () => metrics.writerFailures.inc({ writer: 'error_reports' }),
  });
}
