// Request tracing: when a request is done, its row for ballast.performance_metrics goes into the
// write-behind buffer (api/tracing.ts); nothing waits for the database. Probes and /metrics are not traced.
// Sampled: a request's row is written when its trace id falls in the sample (REQUEST_TRACING_SAMPLE, by
// trace id so services sampling the same way keep the same traces), and always for a 5xx or a request of
// at least REQUEST_TRACING_SLOW_MS; at 1 (the default) every request is written. Each row carries the
// number of requests it stands for (sample_weight: 1/p sampled, 1 always kept).
import type { BatchWriter } from '../batch_writer.ts';
import { state } from '../context.ts';
import { normaliseMethod, normaliseRoute } from '../metrics.ts';
import { sampledByTraceId } from '../trace_context.ts';
import type { TraceRow } from '../tracing.ts';
import type { Middleware } from './compose.ts';
import { finalStatus, isProbe, onDone } from './on_done.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidOrNull = (v: unknown): string | null => (typeof v === 'string' && UUID.test(v) ? v : null);

export function tracing(writer: BatchWriter<TraceRow> | null, sampling: { sampleRate: number; slowMs: number } = { sampleRate: 1, slowMs: 1000 }): Middleware {
  return async (req, res, next) => {
    if (writer && !isProbe(req.url)) {
      const s = state(req);
      const arrivedAt = Date.now();
      onDone(res, () => {
        const status = finalStatus(res);
        const ms = Math.round((performance.now() - s.startedAt) * 1000) / 1000;
        const alwaysKept = status >= 500 || ms >= sampling.slowMs;
        if (!alwaysKept && !sampledByTraceId(s.trace.traceId, sampling.sampleRate)) return;
        writer.push({
          created_at: new Date(arrivedAt).toISOString(),
          endpoint: normaliseRoute(req.url),
          method: normaliseMethod(req.method),
          status_code: status,
          response_time_ms: ms,
          request_id: s.id,
          trace_id: s.trace.traceId,
          operation_name: s.graphql?.operationName?.slice(0, 200) ?? null,
          operation_type: s.graphql?.operationType ?? null,
          user_id: uuidOrNull(s.claims?.sub), // performance_metrics.user_id is a uuid: a subject that is not one is not recorded
          org_id: s.orgId ?? null, // a uuid: api/jwt.ts checked the configured org claim
          // a sampled row stands for 1/p requests, so counts read from the table (ballast status) stay true
          sample_weight: alwaysKept ? 1 : 1 / sampling.sampleRate,
        });
      });
    }
    await next();
  };
}
