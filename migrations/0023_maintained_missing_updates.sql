CREATE TABLE "missing_update_counts" (
	"os_type" "os_type" NOT NULL,
	"name" text NOT NULL,
	"classification" "classification" NOT NULL,
	"machines" integer NOT NULL,
	CONSTRAINT "missing_update_counts_os_type_name_classification_pk" PRIMARY KEY("os_type","name","classification")
);
--> statement-breakpoint
CREATE TABLE "missing_update_details" (
	"os_type" "os_type" NOT NULL,
	"name" text NOT NULL,
	"classification" "classification" NOT NULL,
	"detail_key" uuid NOT NULL,
	"available_version" text NOT NULL,
	"severity" "severity",
	"reboot_suggested" boolean NOT NULL,
	"advisory_ids" text[] NOT NULL,
	"cve_ids" text[] NOT NULL,
	"rows" integer NOT NULL,
	CONSTRAINT "missing_update_details_os_type_name_classification_detail_key_pk" PRIMARY KEY("os_type","name","classification","detail_key")
);
--> statement-breakpoint
-- Hand-written backfill (written after drizzle-kit's output; carry it if this migration is renumbered):
-- the maintained counts of the fleet's missing updates, from the latest assessments of live machines,
-- as src/db/fleetCounts.ts keeps them (the same detail key). Machines are locked against writes for
-- the fill, so that no report stored meanwhile is left out; API processes older than this migration
-- do not maintain the counts, so they must be stopped before it runs (docs/fleet-counts.md).
LOCK TABLE "machines" IN SHARE MODE;
--> statement-breakpoint
INSERT INTO "missing_update_counts" ("os_type", "name", "classification", "machines")
SELECT m."os_type", u."name", u."classification", count(*)::int
FROM "machines" m CROSS JOIN LATERAL (
  SELECT DISTINCT pu."name", pu."classification" FROM "pending_updates" pu WHERE pu."assessment_id" = m."latest_assessment_id") u
WHERE m."removed_at" IS NULL
GROUP BY 1, 2, 3;
--> statement-breakpoint
INSERT INTO "missing_update_details" ("os_type", "name", "classification", "detail_key", "available_version", "severity", "reboot_suggested", "advisory_ids", "cve_ids", "rows")
SELECT m."os_type", pu."name", pu."classification",
       md5(concat_ws(chr(1), pu."available_version", coalesce(pu."severity"::text, ''), pu."reboot_suggested"::text,
                     array_to_string(pu."advisory_ids", chr(2)), array_to_string(pu."cve_ids", chr(2))))::uuid,
       min(pu."available_version"), min(pu."severity"), bool_or(pu."reboot_suggested"), min(pu."advisory_ids"), min(pu."cve_ids"), count(*)::int
FROM "machines" m JOIN "pending_updates" pu ON pu."assessment_id" = m."latest_assessment_id"
WHERE m."removed_at" IS NULL
GROUP BY 1, 2, 3, 4;
