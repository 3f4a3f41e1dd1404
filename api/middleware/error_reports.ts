// Async error tracking: a 5xx response queues a report_error job (api/error_reports.ts) once the
// response is done; the response never waits for it. The shutdown guard's 503 is not an error.
import type { BatchWriter } from '../batch_writer.ts';
import { state } from '../context.ts';
import type { ErrorReport } from '../error_reports.ts';
import { normaliseMethod, normaliseRoute } from '../metrics.ts';
import { formatTraceparent } from '../trace_context.ts';
import type { Middleware } from './compose.ts';
import { onDone } from './on_done.ts';

export const NOT_REPORTED = new Set(['SHUTTING_DOWN']);

export function errorReports(reporter: BatchWriter<ErrorReport> | null): Middleware {
  return async (req, res, next) => {
    if (reporter) {
      const s = state(req);
      onDone(res, () => {
        if (res.statusCode < 500 || !res.headersSent) return;
        if (s.error && NOT_REPORTED.has(s.error.code)) return;
        const at = new Date().toISOString();
        reporter.push({
          status: res.statusCode,
          code: s.error?.code ?? `HTTP_${res.statusCode}`,
          message: (s.error?.message ?? `${req.method} ${normaliseRoute(req.url)} answered ${res.statusCode}`).slice(0, 2000),
          method: normaliseMethod(req.method),
          endpoint: normaliseRoute(req.url),
          operation_name: s.graphql?.operationName ?? null,
          first_request_id: s.id,
          last_request_id: s.id,
          traceparent: formatTraceparent(s.trace),
          first_trace_id: s.trace.traceId,
          last_trace_id: s.trace.traceId,
          first_at: at,
          last_at: at,
          count: 1,
        });
      });
    }
    await next();
  };
}
