-- ballast migration 000003: the W3C trace id of each traced API request (issue 18, trace context), so a
-- request's row in ballast.performance_metrics joins its log lines, its error report, the worker jobs it
-- queued and the spans an OpenTelemetry collector received. Null for rows written before this migration
-- (or by an API that does not send one).
alter table ballast.performance_metrics
  add column trace_id text check (trace_id ~ '^[0-9a-f]{32}$');  -- W3C trace id: 32 lowercase hex digits
-- REQUEST_TRACING_SAMPLE writes a share p of ordinary requests and every 5xx or slow one: a sampled row
-- stands for 1/p requests, a row kept whatever the sample for itself, so counts and ratios read from the
-- table (ballast status) stay true at any sample rate.
alter table ballast.performance_metrics
  add column sample_weight real not null default 1 check (sample_weight >= 1);
comment on column ballast.performance_metrics.sample_weight is
  E'How many requests this row stands for: 1/REQUEST_TRACING_SAMPLE for a sampled row, 1 for a 5xx or slow request (always written). Weight counts by it: sum(sample_weight).';
comment on column ballast.performance_metrics.trace_id is
  E'The request''s W3C trace id (traceparent): the same id as in its log lines (traceId), its error report and the worker jobs it queued.';
