DROP INDEX "assessments_machine_idx";--> statement-breakpoint
ALTER TABLE "assessments" ADD COLUMN "assessed_at" timestamp with time zone;--> statement-breakpoint
-- Until now reports were ordered by the agent's finishedAt: on the server's clock a stored report
-- finished no later than it arrived.
UPDATE "assessments" SET "assessed_at" = least("finished_at", "received_at");--> statement-breakpoint
ALTER TABLE "assessments" ALTER COLUMN "assessed_at" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "clock_offset_seconds" double precision;--> statement-breakpoint
CREATE INDEX "assessments_machine_idx" ON "assessments" USING btree ("machine_id","assessed_at");--> statement-breakpoint
-- A machine whose state is a report from an agent clock ahead of the server's ("finished in 2099")
-- takes its newest report on the server's clock, with that report's counts (the Windows ones from
-- its pending updates, which is all that keeps them).
WITH "newest" AS (
  SELECT DISTINCT ON ("machine_id") * FROM "assessments" ORDER BY "machine_id", "assessed_at" DESC, "received_at" DESC
)
UPDATE "machines" m SET
  "latest_assessment_id" = n."id", "reboot_pending" = n."reboot_pending",
  "critical_count" = n."critical_count", "security_count" = n."security_count", "other_count" = n."other_count",
  "update_rollup_count" = c."update_rollup", "feature_pack_count" = c."feature_pack", "service_pack_count" = c."service_pack",
  "definition_count" = c."definition", "tools_count" = c."tools", "updates_count" = c."updates"
FROM "newest" n, LATERAL (
  SELECT
    count(*) FILTER (WHERE p."classification" = 'UPDATE_ROLLUP')::int AS "update_rollup",
    count(*) FILTER (WHERE p."classification" = 'FEATURE_PACK')::int AS "feature_pack",
    count(*) FILTER (WHERE p."classification" = 'SERVICE_PACK')::int AS "service_pack",
    count(*) FILTER (WHERE p."classification" = 'DEFINITION')::int AS "definition",
    count(*) FILTER (WHERE p."classification" = 'TOOLS')::int AS "tools",
    count(*) FILTER (WHERE p."classification" = 'UPDATES')::int AS "updates"
  FROM "pending_updates" p WHERE p."assessment_id" = n."id"
) c
WHERE m."id" = n."machine_id" AND m."latest_assessment_id" IS DISTINCT FROM n."id";--> statement-breakpoint
UPDATE "machines" m SET "last_assessed_at" = a."assessed_at" FROM "assessments" a WHERE a."id" = m."latest_assessment_id";
