-- ballast migration 000002: the audit log stores what changed, and is sealed by a hash chain (issue 17).
-- Functions, triggers, views and the pg_cron job that use these live in sql/audit.sql and sql/audit_seal.sql.

-- 1. Diffs. An UPDATE's row keeps, in old_values and new_values, only the columns whose value changed
-- (their value before and after); INSERT keeps the new row, DELETE the old row, as before. changed_columns
-- is gone: it is the keys of new_values (ballast.admin_audit_log still shows it). The rows written by 0.1.0
-- are rewritten to the same shape here, once, so every row reads one way (ballast.audit_row_history
-- rebuilds full images from either): an UPDATE's unchanged columns are dropped from both images.
-- The view over changed_columns is recreated by sql/audit.sql.
drop view if exists ballast.admin_audit_log;
alter table ballast.audit_log disable trigger user;  -- the append-only guards (sql/audit.sql), absent on a fresh install
update ballast.audit_log a
   set old_values = a.old_values - same.keys, new_values = a.new_values - same.keys
  from (select l.id, array(select k from jsonb_object_keys(l.new_values) k where l.old_values -> k is not distinct from l.new_values -> k) as keys
          from ballast.audit_log l where l.op = 'UPDATE' and l.old_values is not null and l.new_values is not null) same
 where a.id = same.id and cardinality(same.keys) > 0;
alter table ballast.audit_log enable trigger user;
alter table ballast.audit_log drop column changed_columns;

-- One row's history is one lookup of record_id alone: the entries of one record_id are a posting list
-- (btree deduplication), 8 bytes a row smaller than (record_id, id), and a history is a handful of rows
-- sorted after the lookup. An organisation's page stays one range of (org_id, id); time ranges stay BRIN.
drop index ballast.audit_log_record_id_idx;
create index audit_log_record_id_idx on ballast.audit_log (record_id);

-- 2. Seals. ballast.seal_audit_log() (pg_cron, every minute) appends one row here per run that found new
-- committed audit rows: their ids and an md5 digest of each, the range of transaction ids they come from,
-- and a sha256 over all of it chained to the previous row's hash. The retention path appends a 'prune' row
-- naming the sealed rows it deleted, so verification of what remains still passes.
create table ballast.audit_seals (
  id bigint generated always as identity primary key,
  sealed_at timestamptz not null default now(),
  kind text not null check (kind in ('seal', 'prune')),
  from_txid bigint,            -- seal: it covers the audit rows with from_txid <= txid < to_txid (null for prune)
  to_txid bigint,              -- the xmin of the sealing snapshot: every transaction below it had ended
  snapshot_xmax bigint,        -- seal: xmax of that snapshot; with next_id, where later seals start scanning
  next_id bigint,              -- seal: audit_log's id sequence, read before the snapshot
  row_count int not null check (row_count >= 0),
  ids bigint[] not null,       -- the rows sealed (or pruned), ascending
  digests bytea[] not null,    -- ballast.audit_row_digest() of each, in the order of ids
  prev_hash bytea,             -- the previous row's hash (null for the first)
  hash bytea not null,         -- ballast.audit_seal_hash(prev_hash, kind, sealed_at, from_txid, to_txid, ids, digests)
  check (cardinality(ids) = row_count and cardinality(digests) = row_count),
  check ((kind = 'seal') = (from_txid is not null and to_txid is not null))
);
comment on table ballast.audit_seals is
  E'Hash chain over ballast.audit_log (ballast.seal_audit_log, every minute): which rows each seal covers, a digest of each, and a sha256 chained to the previous seal; ''prune'' rows record the sealed rows retention deleted. ballast.verify_audit_log() checks rows and chain.';
alter table ballast.audit_seals enable row level security;
alter table ballast.audit_seals force row level security;
