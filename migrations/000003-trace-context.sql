-- ballast migration 000003: the W3C trace id of each traced API request (issue 18, trace context), so a
-- request's row in ballast.performance_metrics joins its log lines, its error report, the worker jobs it
-- queued and the spans an OpenTelemetry collector received. Null for rows written before this migration
-- (or by an API that does not send one).
alter table ballast.performance_metrics
  add column trace_id text check (trace_id ~ '^[0-9a-f]{32}$');  -- W3C trace id: 32 lowercase hex digits
comment on column ballast.performance_metrics.trace_id is
  E'The request''s W3C trace id (traceparent): the same id as in its log lines (traceId), its error report and the worker jobs it queued.';
