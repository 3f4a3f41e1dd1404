--! Previous: sha1:4d3a1f8adaac9b7d5252e72b5010cca3a4837278
--! Hash: sha1:a1f83a25bf12cd151dd92b4fa23e0186710fd545
--! Message: cache invalidation: inbox, queue, dead letters, trigger registrations

-- Cache invalidation (capability: invalidation): the trigger inbox, the tag queue, its dead letters and the
-- registry of tables that enqueue tags through invalidate_on_change(). Functions, views, triggers: sql/invalidation.sql.

-- The write path's only table: invalidate_on_change() triggers append one row per statement, with no
-- index, no sequence and no dedup lookup (each of those costs a single-row UPDATE measurably). The worker's
-- drain merges these rows into cache_invalidation_queue, deduplicated, in the transaction that claims.
create table ballast.cache_invalidation_inbox (
  tags text[] not null,                          -- the tags one statement produced (may repeat; merged later)
  enqueued_at timestamptz not null default now()
) with (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000); -- every row is deleted soon: keep the heap small
comment on table ballast.cache_invalidation_inbox is
  E'Tags appended by invalidate_on_change() triggers, one row per statement; drain_cache_invalidation_queue() merges them into cache_invalidation_queue.';
alter table ballast.cache_invalidation_inbox enable row level security;
alter table ballast.cache_invalidation_inbox force row level security;

-- No unique constraint on tag: writers never wait for each other's commit (dedup reads pending rows
-- without locking them; two concurrent equal tags at worst become two deliveries).
create table ballast.cache_invalidation_queue (
  id bigint generated always as identity primary key,
  tag text not null check (length(tag) between 1 and 512),
  enqueued_at timestamptz not null default now(),
  processed_at timestamptz,                           -- when a consumer acked delivery; null while pending
  retry_count int not null default 0,                 -- failed deliveries so far (fail_cache_invalidations)
  max_retries int not null default 10 check (max_retries >= 1), -- failures before the row becomes a dead letter
  next_attempt_at timestamptz not null default now(), -- not claimable before; a claim moves it to the lease's end
  attempts int not null default 0,                    -- claims so far; a claim whose consumer died counts too
  leased_until timestamptz,                           -- set by a claim, cleared by ack/fail; past = the consumer died
  last_error text
) with (
  fillfactor = 70,                     -- room on the page, so claims and failures (no indexed column changes) stay HOT
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,  -- a queue: vacuum by churn, not by size
  autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 20000
);
comment on table ballast.cache_invalidation_queue is
  E'Cache tags waiting for delivery to the sinks (HTTP purge, Redis, log) by the worker; delivered rows are kept for an hour.';
-- claim: pending rows in enqueue order, the due ones picked by next_attempt_at (pgmq's visibility timeout:
-- a lease is a next_attempt_at in the future). Not an index on next_attempt_at: a claim and a failure then
-- change no indexed column and are HOT updates, which is most of the delivery rate.
create index cache_invalidation_queue_pending_idx on ballast.cache_invalidation_queue (id)
  where processed_at is null;
-- dedup: is an equal tag already pending?
create index cache_invalidation_queue_pending_tag_idx on ballast.cache_invalidation_queue (tag)
  where processed_at is null;
-- cleanup of delivered rows
create index cache_invalidation_queue_processed_idx on ballast.cache_invalidation_queue (processed_at)
  where processed_at is not null;
alter table ballast.cache_invalidation_queue enable row level security;
alter table ballast.cache_invalidation_queue force row level security;

create table ballast.cache_invalidation_dead_letters (
  id bigint primary key,                    -- the queue row's id
  tag text not null,
  enqueued_at timestamptz not null,
  failed_at timestamptz not null default now(),
  retry_count int not null,
  attempts int not null,
  last_error text
);
comment on table ballast.cache_invalidation_dead_letters is
  E'Cache tags that failed max_retries deliveries; requeue_cache_invalidation_dead_letters() puts them back.';
create index cache_invalidation_dead_letters_failed_at_idx on ballast.cache_invalidation_dead_letters (failed_at);
alter table ballast.cache_invalidation_dead_letters enable row level security;
alter table ballast.cache_invalidation_dead_letters force row level security;

create table ballast.cache_invalidation_triggers (
  tbl regclass primary key,                 -- the table whose changes enqueue tags
  tags text[] not null,                     -- tag templates as registered, e.g. {'fund:{id}','funds'}
  collapse_above int not null check (collapse_above >= 1),
  function_name text not null,              -- the generated trigger function in schema ballast
  registered_at timestamptz not null default now()
);
comment on table ballast.cache_invalidation_triggers is
  E'Tables registered with invalidate_on_change(): their tag templates and generated trigger function.';
alter table ballast.cache_invalidation_triggers enable row level security;
alter table ballast.cache_invalidation_triggers force row level security;
