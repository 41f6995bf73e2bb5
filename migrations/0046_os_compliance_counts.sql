-- Hand-written: the live machines per OS type and summary state (compliance:readiness), maintained
-- with the summary's own triggers (migrations 0027, 0035; docs/fleet-counts.md), so that the count
-- of a computers page filtered on an OS type with compliance or readiness (or on the OS type alone)
-- is a sum of a few counts instead of a count of every match. Key:
-- 'os_machines:' || os type || ':' || state. It replaces 0034's 'os_type:' keys and their row
-- triggers: the count of an OS type alone is the sum of its states' counts.
CREATE FUNCTION "fleet_summary_os_contribution"("os" "os_type", "state" text) RETURNS TABLE ("key" text, "n" integer) LANGUAGE sql IMMUTABLE AS $$
  SELECT 'os_machines:' || os || ':' || state, 1 WHERE state IS NOT NULL AND os IS NOT NULL
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION "machines_fleet_summary_delta"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was machines;
  now_row machines;
BEGIN
  -- Unassigned (an insert has no old row, a delete no new one): every field null, counting nothing.
  IF TG_OP <> 'INSERT' THEN was := OLD; END IF;
  IF TG_OP <> 'DELETE' THEN now_row := NEW; END IF;
  INSERT INTO fleet_summary_deltas (key, n)
  SELECT d.k, sum(d.v) FROM (
    SELECT c.key AS k, -c.n AS v FROM fleet_summary_contribution(was.summary_state, was.summary_overdue, was.critical_count, was.security_count, was.other_count, was.update_rollup_count, was.feature_pack_count, was.service_pack_count, was.definition_count, was.tools_count, was.updates_count) c
    UNION ALL
    SELECT c.key, -c.n FROM fleet_summary_os_contribution(was.os_type, was.summary_state) c
    UNION ALL
    SELECT c.key, c.n FROM fleet_summary_contribution(now_row.summary_state, now_row.summary_overdue, now_row.critical_count, now_row.security_count, now_row.other_count, now_row.update_rollup_count, now_row.feature_pack_count, now_row.service_pack_count, now_row.definition_count, now_row.tools_count, now_row.updates_count) c
    UNION ALL
    SELECT c.key, c.n FROM fleet_summary_os_contribution(now_row.os_type, now_row.summary_state) c
  ) d GROUP BY d.k HAVING sum(d.v) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
-- 0035's statement trigger, with the rows whose OS type changed while counted among the changed ones.
CREATE OR REPLACE FUNCTION "machines_fleet_summary_delta_by_statement"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH changed_rows AS (
    SELECT o.summary_state AS was_state, o.summary_overdue AS was_overdue, o.critical_count AS was_critical, o.security_count AS was_security, o.other_count AS was_other,
           o.update_rollup_count AS was_rollup, o.feature_pack_count AS was_feature_pack, o.service_pack_count AS was_service_pack, o.definition_count AS was_definition,
           o.tools_count AS was_tools, o.updates_count AS was_updates, o.os_type AS was_os,
           n.summary_state, n.summary_overdue, n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count,
           n.definition_count, n.tools_count, n.updates_count, n.os_type
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.summary_state IS DISTINCT FROM n.summary_state OR o.summary_overdue IS DISTINCT FROM n.summary_overdue
      OR (n.summary_state IS NOT NULL AND o.os_type IS DISTINCT FROM n.os_type)
      OR (n.summary_state IS NOT NULL AND (o.critical_count, o.security_count, o.other_count, o.update_rollup_count, o.feature_pack_count, o.service_pack_count, o.definition_count, o.tools_count, o.updates_count)
        IS DISTINCT FROM (n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count, n.definition_count, n.tools_count, n.updates_count))
  )
  INSERT INTO fleet_summary_deltas (key, n)
  SELECT d.k, sum(d.v) FROM (
    SELECT c.key AS k, -c.n AS v
    FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.was_state, ch.was_overdue, ch.was_critical, ch.was_security, ch.was_other, ch.was_rollup, ch.was_feature_pack, ch.was_service_pack, ch.was_definition, ch.was_tools, ch.was_updates) c
    UNION ALL
    SELECT c.key, -c.n FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_os_contribution(ch.was_os, ch.was_state) c
    UNION ALL
    SELECT c.key, c.n
    FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.summary_state, ch.summary_overdue, ch.critical_count, ch.security_count, ch.other_count, ch.update_rollup_count, ch.feature_pack_count, ch.service_pack_count, ch.definition_count, ch.tools_count, ch.updates_count) c
    UNION ALL
    SELECT c.key, c.n FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_os_contribution(ch.os_type, ch.summary_state) c
  ) d GROUP BY d.k HAVING sum(d.v) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
DROP TRIGGER "machines_os_type_inserted" ON "machines";--> statement-breakpoint
DROP TRIGGER "machines_os_type_updated" ON "machines";--> statement-breakpoint
DROP TRIGGER "machines_os_type_deleted" ON "machines";--> statement-breakpoint
DROP FUNCTION "machines_os_type_delta"();--> statement-breakpoint
-- Backfill from the stored states (the counts are the sum of the stored states; the clock is the
-- reader's), with writers waiting for it (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
DELETE FROM "fleet_summary_deltas" WHERE "key" LIKE 'os\_type:%';--> statement-breakpoint
DELETE FROM "fleet_summary_counts" WHERE "key" LIKE 'os\_type:%';--> statement-breakpoint
INSERT INTO "fleet_summary_counts" ("key", "n")
SELECT 'os_machines:' || "os_type" || ':' || "summary_state", count(*) FROM "machines" WHERE "removed_at" IS NULL AND "summary_state" IS NOT NULL GROUP BY 1
ON CONFLICT ("key") DO UPDATE SET "n" = "fleet_summary_counts"."n" + excluded."n";
