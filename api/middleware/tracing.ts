// Request tracing: when a request is done, its row for ballast.performance_metrics goes into the
// write-behind buffer (api/tracing.ts); nothing waits for the database. Probes and /metrics are not traced.
import type { BatchWriter } from '../batch_writer.ts';
import { state } from '../context.ts';
import { normaliseMethod, normaliseRoute } from '../metrics.ts';
import type { TraceRow } from '../tracing.ts';
import type { Middleware } from './compose.ts';
import { finalStatus, isProbe, onDone } from './on_done.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidOrNull = (v: unknown): string | null => (typeof v === 'string' && UUID.test(v) ? v : null);

export function tracing(writer: BatchWriter<TraceRow> | null): Middleware {
  return async (req, res, next) => {
    if (writer && !isProbe(req.url)) {
      const s = state(req);
      const arrivedAt = Date.now();
      onDone(res, () => {
        writer.push({
          created_at: new Date(arrivedAt).toISOString(),
          endpoint: normaliseRoute(req.url),
          method: normaliseMethod(req.method),
          status_code: finalStatus(res),
          response_time_ms: Math.round((performance.now() - s.startedAt) * 1000) / 1000,
          request_id: s.id,
          operation_name: s.graphql?.operationName?.slice(0, 200) ?? null,
          operation_type: s.graphql?.operationType ?? null,
          user_id: uuidOrNull(s.claims?.sub), // performance_metrics.user_id is a uuid: a subject that is not one is not recorded
          org_id: s.orgId ?? null, // a uuid: api/jwt.ts checked the configured org claim
        });
      });
    }
    await next();
  };
}
