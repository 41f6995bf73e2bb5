-- Custom SQL migration file, put your code below! ---- Hand-written: the compliance summary's update trigger (migration 0027) once per statement instead of
-- once per machine row. An ingest group stores the reports of up to 200 machines in one UPDATE, and
-- the row trigger ran an INSERT into fleet_summary_deltas for each of them (about a tenth of
-- PostgreSQL's time per report, BENCHMARKS.md, "issue 18, goal 4"); now one INSERT per statement
-- appends the change summed over its rows. The change of a row is what it counted before less what
-- it counts after, for the rows the old WHEN let through (state, overdue count or, while counted,
-- a classification count changed); the other rows change nothing and are left out before their
-- contributions are computed. Nothing stored changes: no backfill, and the API needs no restart.
DROP TRIGGER "machines_fleet_summary_updated" ON "machines";--> statement-breakpoint
CREATE FUNCTION "machines_fleet_summary_delta_by_statement"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH changed_rows AS (
    SELECT o.summary_state AS was_state, o.summary_overdue AS was_overdue, o.critical_count AS was_critical, o.security_count AS was_security, o.other_count AS was_other,
           o.update_rollup_count AS was_rollup, o.feature_pack_count AS was_feature_pack, o.service_pack_count AS was_service_pack, o.definition_count AS was_definition,
           o.tools_count AS was_tools, o.updates_count AS was_updates,
           n.summary_state, n.summary_overdue, n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count,
           n.definition_count, n.tools_count, n.updates_count
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.summary_state IS DISTINCT FROM n.summary_state OR o.summary_overdue IS DISTINCT FROM n.summary_overdue
      OR (n.summary_state IS NOT NULL AND (o.critical_count, o.security_count, o.other_count, o.update_rollup_count, o.feature_pack_count, o.service_pack_count, o.definition_count, o.tools_count, o.updates_count)
        IS DISTINCT FROM (n.critical_count, n.security_count, n.other_count, n.update_rollup_count, n.feature_pack_count, n.service_pack_count, n.definition_count, n.tools_count, n.updates_count))
  )
  INSERT INTO fleet_summary_deltas (key, n)
  SELECT d.k, sum(d.v) FROM (
    SELECT c.key AS k, -c.n AS v
    FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.was_state, ch.was_overdue, ch.was_critical, ch.was_security, ch.was_other, ch.was_rollup, ch.was_feature_pack, ch.was_service_pack, ch.was_definition, ch.was_tools, ch.was_updates) c
    UNION ALL
    SELECT c.key, c.n
    FROM changed_rows ch CROSS JOIN LATERAL fleet_summary_contribution(ch.summary_state, ch.summary_overdue, ch.critical_count, ch.security_count, ch.other_count, ch.update_rollup_count, ch.feature_pack_count, ch.service_pack_count, ch.definition_count, ch.tools_count, ch.updates_count) c
  ) d GROUP BY d.k HAVING sum(d.v) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_fleet_summary_updated" AFTER UPDATE ON "machines" REFERENCING OLD TABLE AS "old_rows" NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "machines_fleet_summary_delta_by_statement"();
