-- Hand-written: the overdue live machines counted per OS type (summary key
-- 'os_overdue_machines:<os type>:<compliance>:<readiness>') and per tag (machine_tag_counts keyed by
-- overdue as well), so that the count of a computers page filtered on overdue (or not) with the OS
-- type or one tag is a sum of a few counts instead of a count of every match (docs/fleet-counts.md).
-- The summary's triggers keep them with the rest; a tag's count, or a tag's per state, is the sum
-- over the OS types and both values of overdue, as every reader of the table sums it.
-- Writers wait from here to the end (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
DELETE FROM "machine_tag_deltas";--> statement-breakpoint
DELETE FROM "machine_tag_counts";--> statement-breakpoint
ALTER TABLE "machine_tag_counts" DROP CONSTRAINT "machine_tag_counts_tag_os_type_state_pk";--> statement-breakpoint
ALTER TABLE "machine_tag_counts" ADD COLUMN "overdue" boolean NOT NULL;--> statement-breakpoint
ALTER TABLE "machine_tag_counts" ADD CONSTRAINT "machine_tag_counts_tag_os_type_state_overdue_pk" PRIMARY KEY("tag","os_type","state","overdue");--> statement-breakpoint
ALTER TABLE "machine_tag_deltas" ADD COLUMN "overdue" boolean NOT NULL;--> statement-breakpoint
-- 0046's, with the overdue machine counted under its OS type and state as well.
CREATE FUNCTION "fleet_summary_os_contribution"("os" "os_type", "state" text, "overdue" integer) RETURNS TABLE ("key" text, "n" integer) LANGUAGE sql IMMUTABLE AS $$
  SELECT k, 1 FROM (VALUES ('os_machines:' || os || ':' || state, true), ('os_overdue_machines:' || os || ':' || state, coalesce(overdue, 0) > 0)) AS c(k, counted)
  WHERE state IS NOT NULL AND os IS NOT NULL AND counted
$$;--> statement-breakpoint
-- 0052's, keyed by overdue as well: 1 for each distinct tag, nothing when not counted (removed).
CREATE FUNCTION "machine_tag_contribution"("tags" text[], "os" "os_type", "state" text, "overdue" integer) RETURNS TABLE ("tag" text, "os_type" "os_type", "state" text, "overdue" boolean, "n" integer) LANGUAGE sql IMMUTABLE AS $$
  SELECT DISTINCT t, os, state, coalesce(overdue, 0) > 0, 1 FROM unnest(tags) AS t WHERE state IS NOT NULL
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
    SELECT c.key, -c.n FROM fleet_summary_os_contribution(was.os_type, was.summary_state, was.summary_overdue) c
    UNION ALL
    SELECT c.key, c.n FROM fleet_summary_contribution(now_row.summary_state, now_row.summary_overdue, now_row.critical_count, now_row.security_count, now_row.other_count, now_row.update_rollup_count, now_row.feature_pack_count, now_row.service_pack_count, now_row.definition_count, now_row.tools_count, now_row.updates_count) c
    UNION ALL
    SELECT c.key, c.n FROM fleet_summary_os_contribution(now_row.os_type, now_row.summary_state, now_row.summary_overdue) c
  ) d GROUP BY d.k HAVING sum(d.v) <> 0;
  INSERT INTO machine_tag_deltas (tag, os_type, state, overdue, n)
  SELECT d.tag, d.os_type, d.state, d.overdue, sum(d.v) FROM (
    SELECT c.tag, c.os_type, c.state, c.overdue, -c.n AS v FROM machine_tag_contribution(was.tags, was.os_type, was.summary_state, was.summary_overdue) c
    UNION ALL
    SELECT c.tag, c.os_type, c.state, c.overdue, c.n FROM machine_tag_contribution(now_row.tags, now_row.os_type, now_row.summary_state, now_row.summary_overdue) c
  ) d GROUP BY d.tag, d.os_type, d.state, d.overdue HAVING sum(d.v) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
-- 0052's statement trigger: a counted row whose overdue changed (some or none) moves its tags too.
-- SET enable_nestloop = off as 0055 set it: a CREATE OR REPLACE without it would drop it.
CREATE OR REPLACE FUNCTION "machines_fleet_summary_delta_by_statement"() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
  WITH changed_rows AS (
    SELECT o.summary_state AS was_state, o.summary_overdue AS was_overdue, o.critical_count AS was_critical, o.security_count AS was_security, o.other_count AS was_other,
           o.update_rollup_count AS was_rollup, o.feature_pack_count AS was_feature_pack, o.service_pack_count AS was_service_pack, o.definition_count AS was_definition,
           o.tools_count AS was_tools, o.updates_count AS was_updates, o.os_type AS was_os, o.tags AS was_tags,
           n.summary_state, n.summary_overdue, n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count,
           n.definition_count, n.tools_count, n.updates_count, n.os_type, n.tags
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.summary_state IS DISTINCT FROM n.summary_state OR o.summary_overdue IS DISTINCT FROM n.summary_overdue
      OR (n.summary_state IS NOT NULL AND (o.os_type IS DISTINCT FROM n.os_type OR o.tags IS DISTINCT FROM n.tags))
      OR (n.summary_state IS NOT NULL AND (o.critical_count, o.security_count, o.other_count, o.update_rollup_count, o.feature_pack_count, o.service_pack_count, o.definition_count, o.tools_count, o.updates_count)
        IS DISTINCT FROM (n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count, n.definition_count, n.tools_count, n.updates_count))
  ),
  summary AS (
    INSERT INTO fleet_summary_deltas (key, n)
    SELECT d.k, sum(d.v) FROM (
      SELECT c.key AS k, -c.n AS v
      FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.was_state, ch.was_overdue, ch.was_critical, ch.was_security, ch.was_other, ch.was_rollup, ch.was_feature_pack, ch.was_service_pack, ch.was_definition, ch.was_tools, ch.was_updates) c
      UNION ALL
      SELECT c.key, -c.n FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_os_contribution(ch.was_os, ch.was_state, ch.was_overdue) c
      UNION ALL
      SELECT c.key, c.n
      FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.summary_state, ch.summary_overdue, ch.critical_count, ch.security_count, ch.other_count, ch.update_rollup_count, ch.feature_pack_count, ch.service_pack_count, ch.definition_count, ch.tools_count, ch.updates_count) c
      UNION ALL
      SELECT c.key, c.n FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_os_contribution(ch.os_type, ch.summary_state, ch.summary_overdue) c
    ) d GROUP BY d.k HAVING sum(d.v) <> 0
  ),
  tags_moved AS (
    SELECT * FROM changed_rows ch
    WHERE ch.was_state IS DISTINCT FROM ch.summary_state OR ch.was_tags IS DISTINCT FROM ch.tags OR ch.was_os IS DISTINCT FROM ch.os_type
      OR (coalesce(ch.was_overdue, 0) > 0) <> (coalesce(ch.summary_overdue, 0) > 0)
  )
  INSERT INTO machine_tag_deltas (tag, os_type, state, overdue, n)
  SELECT d.tag, d.os_type, d.state, d.overdue, sum(d.v) FROM (
    SELECT c.tag, c.os_type, c.state, c.overdue, -c.n AS v FROM tags_moved ch CROSS JOIN LATERAL machine_tag_contribution(ch.was_tags, ch.was_os, ch.was_state, ch.was_overdue) c
    UNION ALL
    SELECT c.tag, c.os_type, c.state, c.overdue, c.n FROM tags_moved ch CROSS JOIN LATERAL machine_tag_contribution(ch.tags, ch.os_type, ch.summary_state, ch.summary_overdue) c
  ) d GROUP BY d.tag, d.os_type, d.state, d.overdue HAVING sum(d.v) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
-- 0046's two-argument fleet_summary_os_contribution stays: an API process of the version before
-- calls it in its summary reader during a rolling upgrade (its answers stay right without the new key).
DROP FUNCTION "machine_tag_os_state_contribution"(text[], "os_type", text);--> statement-breakpoint
-- The stored states' overdue machines per OS type and their tags' counts keyed by overdue (the clock is the reader's).
INSERT INTO "fleet_summary_counts" ("key", "n")
SELECT 'os_overdue_machines:' || "os_type" || ':' || "summary_state", count(*) FROM "machines"
WHERE "removed_at" IS NULL AND "summary_state" IS NOT NULL AND "summary_overdue" > 0 GROUP BY 1
ON CONFLICT ("key") DO UPDATE SET "n" = "fleet_summary_counts"."n" + excluded."n";--> statement-breakpoint
INSERT INTO "machine_tag_counts" ("tag", "os_type", "state", "overdue", "n")
SELECT c.tag, c.os_type, c.state, c.overdue, count(*) FROM "machines" m CROSS JOIN LATERAL machine_tag_contribution(m."tags", m."os_type", m."summary_state", m."summary_overdue") c
WHERE m."removed_at" IS NULL GROUP BY c.tag, c.os_type, c.state, c.overdue;
