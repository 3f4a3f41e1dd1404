--! Previous: sha1:c828264e35900ab3676ab28cbf4b207f293507d5
--! Hash: sha1:042e5005746992c44728269dcec22e16df80e208
--! Message: cleanup: batch_pause default 60 ms

-- Cleanup pauses 60 ms between batches by default (was 20 ms): on 2 shared cores 20 ms let a cleanup
-- run raise writers' p99 by 1.6x on a quiet machine; 60 ms kept it at 1.3x, still ~15k rows/s deleted.
alter table ballast.cleanup_policies alter column batch_pause set default '60 milliseconds';
