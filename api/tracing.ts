// Request tracing: one row per request (sampled: api/middleware/tracing.ts) in ballast.performance_metrics,
// with its W3C trace id, written in batches off the response path (api/batch_writer.ts → ballast.record_performance_metrics(jsonb), one INSERT per batch).
import type pg from 'pg';
import type { Logger } from 'pino';
import { BatchWriter } from './batch_writer.ts';
import type { ApiConfig } from './config.ts';
import type { ApiMetrics } from './metrics.ts';

export type TraceRow = {
  created_at: string;
  endpoint: string;
  method: string;
  status_code: number;
  response_time_ms: number;
  request_id: string;
  /** The request's W3C trace id (api/trace_context.ts). */
  trace_id: string;
  operation_name: string | null;
  operation_type: string | null;
  user_id: string | null;
  org_id: string | null;
  /** How many requests the row stands for: 1/REQUEST_TRACING_SAMPLE when sampled, 1 when always kept (5xx, slow). */
  sample_weight: number;
};

export function makeTraceWriter(pool: pg.Pool, config: ApiConfig, metrics: ApiMetrics, logger: Logger): BatchWriter<TraceRow> {
  return new BatchWriter<TraceRow>({
    name: 'performance_metrics',
    flushMs: config.traceFlushMs,
    batchRows: config.traceBatchRows,
    bufferMax: config.traceBufferMax,
    logger,
    write: async (rows) => {
      await pool.query({ name: 'ballast_record_performance_metrics', text: 'select ballast.record_performance_metrics($1::jsonb)', values: [JSON.stringify(rows)] });
    },
    onDrop: (n) => metrics.rowsDropped.inc({ writer: 'performance_metrics' }, n),
    onFailure: () => metrics.writerFailures.inc({ writer: 'performance_metrics' }),
  });
}
