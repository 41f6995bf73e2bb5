-- Hand-written: the overdue live machines counted per summary state too
-- ('overdue_machines:<compliance>:<readiness>', src/fleet/fleetSummary.ts summaryKey), so that the
-- count of a computers page filtered on overdue (or not), alone or with compliance and readiness, is
-- a sum of a few counts instead of a count of every match (docs/fleet-counts.md). The summary's
-- triggers and its reader's clock (the machines past their next change instant) all go through
-- fleet_summary_contribution, so the new key is kept wherever the others are.
-- Writers wait from here to the end (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
-- 0027's, with the overdue machine counted under its state as well.
CREATE OR REPLACE FUNCTION "fleet_summary_contribution"("state" text, "overdue" integer, "critical_n" integer, "security_n" integer, "other_n" integer, "rollup_n" integer, "feature_pack_n" integer, "service_pack_n" integer, "definition_n" integer, "tools_n" integer, "updates_n" integer) RETURNS TABLE ("key" text, "n" integer) LANGUAGE sql IMMUTABLE AS $$
  SELECT k, v FROM (VALUES
    ('machines:' || state, 1),
    ('overdue_machines', (overdue > 0)::int),
    ('overdue_machines:' || state, (overdue > 0)::int),
    ('overdue_updates', overdue),
    ('class_updates:CRITICAL', critical_n), ('class_machines:CRITICAL', (critical_n > 0)::int),
    ('class_updates:SECURITY', security_n), ('class_machines:SECURITY', (security_n > 0)::int),
    ('class_updates:OTHER', other_n - rollup_n - feature_pack_n - service_pack_n - definition_n - tools_n - updates_n),
    ('class_machines:OTHER', (other_n - rollup_n - feature_pack_n - service_pack_n - definition_n - tools_n - updates_n > 0)::int),
    ('class_updates:UPDATE_ROLLUP', rollup_n), ('class_machines:UPDATE_ROLLUP', (rollup_n > 0)::int),
    ('class_updates:FEATURE_PACK', feature_pack_n), ('class_machines:FEATURE_PACK', (feature_pack_n > 0)::int),
    ('class_updates:SERVICE_PACK', service_pack_n), ('class_machines:SERVICE_PACK', (service_pack_n > 0)::int),
    ('class_updates:DEFINITION', definition_n), ('class_machines:DEFINITION', (definition_n > 0)::int),
    ('class_updates:TOOLS', tools_n), ('class_machines:TOOLS', (tools_n > 0)::int),
    ('class_updates:UPDATES', updates_n), ('class_machines:UPDATES', (updates_n > 0)::int)
  ) AS c(k, v) WHERE state IS NOT NULL AND v <> 0
$$;--> statement-breakpoint
-- The stored states' overdue machines (the clock is the reader's).
INSERT INTO "fleet_summary_counts" ("key", "n")
SELECT 'overdue_machines:' || "summary_state", count(*) FROM "machines"
WHERE "removed_at" IS NULL AND "summary_state" IS NOT NULL AND "summary_overdue" > 0 GROUP BY 1
ON CONFLICT ("key") DO UPDATE SET "n" = "fleet_summary_counts"."n" + excluded."n";
