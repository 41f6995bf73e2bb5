ALTER TABLE "machine_tags" ADD COLUMN "os_type" "os_type";--> statement-breakpoint
ALTER TABLE "machine_tags" ADD COLUMN "state" text;--> statement-breakpoint
ALTER TABLE "machine_tags" ADD COLUMN "overdue" boolean;--> statement-breakpoint
-- Hand-written: each tag row carries its machine's OS type, stored summary state and overdue (as the
-- tag counts key them, 0056), INCLUDEd in the primary key, so that a page of a tag with another
-- condition walks the tag's index entries and reads only the machines whose stored state can meet
-- it (src/db/machines.ts, tagPage): with few of the tag's machines meeting it, the walk read every
-- machine carrying the tag (0.4 s for 100,000 at 1,000,000 machines).
ALTER TABLE "machine_tags" DROP CONSTRAINT "machine_tags_tag_name_machine_id_pk";--> statement-breakpoint
ALTER TABLE "machine_tags" ADD CONSTRAINT "machine_tags_tag_name_machine_id_pk" PRIMARY KEY ("tag", "name", "machine_id") INCLUDE ("os_type", "state", "overdue");--> statement-breakpoint
-- Writers wait for the fill (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
-- 0041's row trigger: a machine's new rows carry its stored state (the BEFORE trigger's, 0054).
CREATE OR REPLACE FUNCTION "machines_tag_rows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL AND cardinality(OLD.tags) > 0 THEN
    DELETE FROM machine_tags WHERE tag = ANY (OLD.tags) AND name = OLD.name AND machine_id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL AND cardinality(NEW.tags) > 0 THEN
    INSERT INTO machine_tags (tag, name, machine_id, os_type, state, overdue)
    SELECT DISTINCT tag, NEW.name, NEW.id, NEW.os_type, NEW.summary_state, coalesce(NEW.summary_overdue, 0) > 0 FROM unnest(NEW.tags) AS tag;
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
-- 0056's statement trigger, which moves a machine's tag counts when its OS type, state or overdue
-- changed, now restates its tag rows too (a change of tags or name rewrote them already, in the row
-- trigger). One UPDATE per such machine, by the primary key: a join of the changed machines with
-- machine_tags would be planned by hash under this function's enable_nestloop = off (0055), reading
-- every tag row at every statement. SET enable_nestloop = off restated (0055).
CREATE OR REPLACE FUNCTION "machines_fleet_summary_delta_by_statement"() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $$
DECLARE
  r record;
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
  FOR r IN
    SELECT n.id, n.name, n.tags, n.os_type, n.summary_state, coalesce(n.summary_overdue, 0) > 0 AS overdue
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE n.removed_at IS NULL AND cardinality(n.tags) > 0
      AND (o.os_type IS DISTINCT FROM n.os_type OR o.summary_state IS DISTINCT FROM n.summary_state OR (coalesce(o.summary_overdue, 0) > 0) <> (coalesce(n.summary_overdue, 0) > 0))
  LOOP
    UPDATE machine_tags SET os_type = r.os_type, state = r.summary_state, overdue = r.overdue
    WHERE tag = ANY (r.tags) AND name = r.name AND machine_id = r.id;
  END LOOP;
  RETURN NULL;
END
$$;--> statement-breakpoint
UPDATE "machine_tags" mt SET "os_type" = m."os_type", "state" = m."summary_state", "overdue" = coalesce(m."summary_overdue", 0) > 0
FROM "machines" m WHERE m."id" = mt."machine_id";--> statement-breakpoint
-- The new columns' statistics now: without them the planner guessed that few tag rows meet any
-- state and read a tag's rows whole to sort them (80 ms at 1,000,000 machines for a page most of
-- the tag's machines meet, 1.3 ms once analyzed).
ANALYZE "machine_tags";
