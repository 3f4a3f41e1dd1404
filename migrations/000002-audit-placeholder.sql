-- Placeholder, only in branch i18b: migration ids must run 1, 2, 3 without gaps (src/kit_files.ts), and
-- 000002 belongs to the audit change (another branch). When merging, DELETE THIS FILE and keep the
-- audit branch's migrations/000002-*.sql; 000003-trace-context.sql follows it unchanged.
select 1;
