-- Hand-written: the maintained details keyed by the md5 of the combination's row text
-- (src/db/fleetCounts.ts, DETAIL_KEY) instead of its lists joined with chr(2), under which
-- ['a\x02b'] and ['a', 'b'] shared a key: their rows were added to one row, and one statement
-- adding both failed. A merged row cannot be split again, so the details are rebuilt from the
-- latest assessments of live machines, as 0023 filled them. Machines are locked against writes for
-- the rebuild; API processes older than this migration compute the old key, so they must be stopped
-- before it runs (docs/fleet-counts.md, "Upgrading").
LOCK TABLE "machines" IN SHARE MODE;
--> statement-breakpoint
DELETE FROM "missing_update_details";
--> statement-breakpoint
INSERT INTO "missing_update_details" ("os_type", "name", "classification", "detail_key", "available_version", "severity", "reboot_suggested", "advisory_ids", "cve_ids", "rows")
SELECT m."os_type", pu."name", pu."classification",
       md5(row(pu."available_version", pu."severity", pu."reboot_suggested", pu."advisory_ids", pu."cve_ids")::text)::uuid,
       min(pu."available_version"), min(pu."severity"), bool_or(pu."reboot_suggested"), min(pu."advisory_ids"), min(pu."cve_ids"), count(*)::int
FROM "machines" m JOIN "pending_updates" pu ON pu."assessment_id" = m."latest_assessment_id"
WHERE m."removed_at" IS NULL
GROUP BY 1, 2, 3, 4;
