ALTER TABLE "machines" ADD COLUMN "update_rollup_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "feature_pack_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "service_pack_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "definition_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "tools_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "updates_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Backfill from each machine's latest assessment (written by hand after drizzle-kit's output).
UPDATE "machines" m SET
	"update_rollup_count" = c.update_rollup, "feature_pack_count" = c.feature_pack, "service_pack_count" = c.service_pack,
	"definition_count" = c.definition, "tools_count" = c.tools, "updates_count" = c.updates
FROM (
	SELECT "assessment_id",
		count(*) FILTER (WHERE "classification" = 'UPDATE_ROLLUP')::int AS update_rollup,
		count(*) FILTER (WHERE "classification" = 'FEATURE_PACK')::int AS feature_pack,
		count(*) FILTER (WHERE "classification" = 'SERVICE_PACK')::int AS service_pack,
		count(*) FILTER (WHERE "classification" = 'DEFINITION')::int AS definition,
		count(*) FILTER (WHERE "classification" = 'TOOLS')::int AS tools,
		count(*) FILTER (WHERE "classification" = 'UPDATES')::int AS updates
	FROM "pending_updates" GROUP BY "assessment_id"
) c
WHERE c."assessment_id" = m."latest_assessment_id";
