-- A batched run's machine whose POST scripts went to its agent as a job of their own keeps how it ends once
-- they report (src/activities/batchedRuns.ts). Null on every existing row: no run had such a machine before.
ALTER TABLE "machine_runs" ADD COLUMN "post_scripts_end" jsonb;