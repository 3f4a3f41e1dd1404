-- The API's SQL: batched request tracing, rollups, error-report jobs (in the schema of setting worker_schema),
-- database gauges, privileges.
begin;
select plan(26);

-- record_performance_metrics: one call, many rows
select is(ballast.record_performance_metrics(jsonb_build_array(
  jsonb_build_object('created_at', now(), 'endpoint', '/graphql', 'method', 'POST', 'status_code', 200, 'response_time_ms', 10, 'request_id', 'pgtap-1', 'operation_name', 'ListFunds', 'operation_type', 'query',
                     'trace_id', '4bf92f3577b34da6a3ce929d0e0e4736'),
  jsonb_build_object('created_at', now(), 'endpoint', '/graphql', 'method', 'POST', 'status_code', 200, 'response_time_ms', 30, 'request_id', 'pgtap-2', 'operation_name', 'ListFunds', 'operation_type', 'query'),
  jsonb_build_object('created_at', now(), 'endpoint', '/graphql', 'method', 'POST', 'status_code', 503, 'response_time_ms', 50, 'request_id', 'pgtap-3', 'operation_name', 'ListFunds', 'operation_type', 'query',
                     'user_id', '11111111-1111-1111-1111-111111111111', 'org_id', '22222222-2222-2222-2222-222222222222'))),
  3, 'record_performance_metrics inserts every row of the batch');
select is((select user_id::text from ballast.performance_metrics where request_id = 'pgtap-3'), '11111111-1111-1111-1111-111111111111', 'user_id is stored');
select is((select trace_id from ballast.performance_metrics where request_id = 'pgtap-1'), '4bf92f3577b34da6a3ce929d0e0e4736', 'the W3C trace id is stored');
select throws_ok($$select ballast.record_performance_metrics('[{"created_at": "2026-01-01T00:00:00Z", "endpoint": "/graphql", "method": "POST", "status_code": 200, "response_time_ms": 1, "request_id": "pgtap-bad", "trace_id": "4BF92F35"}]')$$,
                 '23514', null, 'a trace id that is not 32 lowercase hex digits is refused by the table');
select is((select sample_weight from ballast.performance_metrics where request_id = 'pgtap-1'), 1::real, 'a row without sample_weight stands for one request');
select throws_ok($$select ballast.record_performance_metrics('[{"created_at": "2026-01-01T00:00:00Z", "endpoint": "/graphql", "method": "POST", "status_code": 200, "response_time_ms": 1, "request_id": "pgtap-bad", "sample_weight": 0.5}]')$$,
                 '23514', null, 'a sample_weight below 1 is refused by the table');
select ballast.record_performance_metrics('[{"created_at": "2026-01-01T00:00:00Z", "endpoint": "/graphql", "method": "POST", "status_code": 200, "response_time_ms": 1, "request_id": "pgtap-w", "sample_weight": 20}]');
select is((select sample_weight from ballast.performance_metrics where request_id = 'pgtap-w'), 20::real, 'a sampled row keeps its weight (1/REQUEST_TRACING_SAMPLE)');
delete from ballast.performance_metrics where request_id = 'pgtap-w';
select throws_ok($$select ballast.record_performance_metrics('{"a": 1}')$$, '22023', 'record_performance_metrics: rows must be a JSON array, got object', 'a non-array is refused');
select throws_ok($$select ballast.record_performance_metrics((select jsonb_agg(jsonb_build_object('endpoint', '/x')) from generate_series(1, 10001)))$$,
                 '22023', 'record_performance_metrics: at most 10000 rows per call, got 10001', 'more than 10000 rows are refused');
select throws_ok($$select ballast.record_performance_metrics('[{"endpoint": "/graphql"}]')$$, '23502', null, 'a row without method/status is refused by the table');
select is((select count(*)::int from ballast.performance_metrics where request_id like 'pgtap-%'), 3, 'refused batches leave no rows');

-- rollups: refreshable concurrently, with count / errors / percentiles
refresh materialized view ballast.api_metrics_5m;
refresh materialized view concurrently ballast.api_metrics_5m;
refresh materialized view concurrently ballast.api_metrics_hourly;
select is((select row(request_count, error_count, p50_ms)::text from ballast.api_metrics_5m where operation_name = 'ListFunds'),
          '(3,1,30)', 'api_metrics_5m counts requests and 5xx errors and has the median');
select ok((select p99_ms > 49 and p99_ms <= 50 from ballast.api_metrics_hourly where operation_name = 'ListFunds'), 'api_metrics_hourly has the p99');

-- enqueue_error_reports: one ballast_report_error job per report
select is(ballast.enqueue_error_reports('[{"status": 500, "code": "X", "count": 1}, {"status": 503, "code": "Y", "count": 2}]'), 2, 'enqueue_error_reports queues one job per report');
select is((select count(*)::int from ballast_worker.jobs where task_identifier = 'ballast_report_error'), 2, 'the jobs are ballast_report_error jobs');
select throws_ok($$select ballast.enqueue_error_reports('[1]')$$, '22023', 'enqueue_error_reports: every report must be a JSON object', 'a report that is not an object is refused');
select is((select count(*)::int from ballast_worker.jobs where task_identifier = 'ballast_report_error'), 2, 'a refused call queues nothing');

-- metrics_snapshot: every metrics__ function, each answering or failing on its own
create function ballast.metrics__zz_broken() returns table (metric text, help text, labels jsonb, value double precision)
  language plpgsql as $$ begin raise exception 'broken on purpose'; end $$;
select is((select value from ballast.metrics_snapshot() where metric = 'ballast_db_metrics_source_up' and labels->>'source' = 'ballast.metrics__zz_broken()'),
          0::float8, 'a failing metrics__ function reports source_up 0');
select is((select value from ballast.metrics_snapshot() where metric = 'ballast_db_metrics_source_up' and labels->>'source' = 'ballast.metrics__api()'),
          1::float8, 'the other sources still answer');
select ok(exists (select 1 from ballast.metrics_snapshot() where metric = 'ballast_worker_jobs_pending' and labels->>'task' = 'ballast_report_error' and value = 2),
          'worker queue depth per task is a gauge');

\ir stand_in_worker_schema.psql
select ballast.configure('worker_schema', '"tap_gw"');
select is(ballast.enqueue_error_reports('[{"status": 500}]'), 1, 'enqueue_error_reports: with worker_schema set, queues into that schema');
select is((select string_agg(task_identifier, ',') from tap_gw.jobs), 'ballast_report_error', 'the job is in the app''s schema');
insert into tap_gw.jobs (task_identifier) values ('app_send_email');
select is((select string_agg(labels->>'task' || '=' || value, ',') from ballast.metrics__worker() where metric = 'ballast_worker_jobs_pending'),
          'ballast_report_error=1', 'the gauges read that schema, and only ballast''s tasks in it');
select ballast.configure('worker_schema', '"tap_gw_not_yet"');
select throws_ok($$select ballast.enqueue_error_reports('[{"status": 500}]')$$, '55000',
                 'enqueue_error_reports: no graphile-worker in schema tap_gw_not_yet (setting worker_schema)',
                 'no graphile-worker in that schema yet: 55000, naming it');
select ballast.configure('worker_schema', null);

-- privileges
set local role ballast_member;
select throws_ok($$select * from ballast.metrics_snapshot()$$, '42501', null, 'visitors may not read the gauges');
select throws_ok($$select ballast.record_performance_metrics('[]')$$, '42501', null, 'visitors may not write traces');
reset role;

select * from finish();
rollback;
