CREATE TABLE "cve_exposure_counts" (
	"cve_id" text PRIMARY KEY NOT NULL,
	"machines" integer NOT NULL
);
--> statement-breakpoint
-- Hand-written backfill (written after drizzle-kit's output; carry it if this migration is renumbered):
-- the live machines per CVE their latest assessment's updates' advisories name, a machine once per
-- CVE, as src/db/fleetCounts.ts keeps them. Machines are locked against writes for the fill, so that
-- no report stored meanwhile is left out; API processes older than this migration do not maintain
-- the counts, so they must be stopped before it runs (docs/fleet-counts.md).
LOCK TABLE "machines" IN SHARE MODE;
--> statement-breakpoint
INSERT INTO "cve_exposure_counts" ("cve_id", "machines")
SELECT c."cve_id", count(*)::int
FROM "machines" m CROSS JOIN LATERAL (
  SELECT DISTINCT x."cve_id" FROM "pending_updates" pu CROSS JOIN LATERAL unnest(pu."cve_ids") AS x("cve_id")
  WHERE pu."assessment_id" = m."latest_assessment_id") c
WHERE m."removed_at" IS NULL
GROUP BY 1;
