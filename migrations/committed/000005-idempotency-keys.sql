--! Previous: sha1:9ae68a35431df5463a857efd1de5b675b6f71e80
--! Hash: sha1:64ea5fef05af504bf5d9300a3538e6868aa2548c
--! Message: idempotency keys

-- Idempotency keys (capability: idempotency). One row per (scope, key): who holds the key while the
-- request runs (a lease), then the stored result that retries get back. The functions that read and write
-- it live in sql/idempotency.sql; visitors never touch the table directly.

create table ballast.idempotency_keys (
  scope text not null check (octet_length(scope) between 1 and 1024), -- whose key: e.g. 'sub:<user id>' or 'ip:<address>'
  key text not null check (key ~ '^[\x20-\x7e]{1,255}$'),              -- the client's key: 1-255 printable ASCII characters
  request_hash text not null check (length(request_hash) between 1 and 256), -- e.g. SHA-256 of the request; same key + other hash = mismatch
  status text not null default 'in_progress' check (status in ('in_progress', 'completed')),
  status_code int check (status_code between 100 and 599),            -- the stored result, once completed
  response_body text,
  locked_until timestamptz,   -- end of the lease while in_progress: after it, the next caller takes the key over
  locked_by text,             -- the lease holder (setting ballast.idempotency_owner): only it may complete or release
  created_at timestamptz not null default now(),
  expires_at timestamptz not null, -- after this the key behaves as absent; the cleanup capability deletes the row
  primary key (scope, key),
  check ((status = 'in_progress') = (locked_until is not null and locked_by is not null)),
  check (status = 'in_progress' or status_code is not null)
);
comment on table ballast.idempotency_keys is
  E'Idempotency keys: a lease while the request runs, then its stored result (status_code, response_body) until expires_at.';

-- Cleanup deletes by expiry (where expires_at < now()); lookups use the primary key (scope, key).
create index idempotency_keys_expires_at_idx on ballast.idempotency_keys (expires_at);

alter table ballast.idempotency_keys enable row level security;
alter table ballast.idempotency_keys force row level security;
