-- Custom SQL migration file, put your code below! ---- The fleet's agents per version (the overview's agentVersions), maintained like the compliance
-- summary (migration 0027, docs/fleet-counts.md): a row trigger on machines appends the change of a
-- machine's contribution to fleet_summary_deltas in the writer's transaction, the upkeep folds it
-- into fleet_summary_counts, and a read sums both. Key: 'agent_version:' || the version, or
-- 'agent_version' alone for a machine whose agent never said (null).
CREATE FUNCTION "fleet_agent_version_key"("version" text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'agent_version' || coalesce(':' || "version", '')
$$;--> statement-breakpoint
CREATE FUNCTION "machines_agent_version_delta"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL THEN
    INSERT INTO fleet_summary_deltas (key, n) VALUES (fleet_agent_version_key(OLD.agent_version), -1);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL THEN
    INSERT INTO fleet_summary_deltas (key, n) VALUES (fleet_agent_version_key(NEW.agent_version), 1);
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_agent_version_inserted" AFTER INSERT ON "machines" FOR EACH ROW WHEN (NEW."removed_at" IS NULL) EXECUTE FUNCTION "machines_agent_version_delta"();--> statement-breakpoint
-- A check-in that reports the same version (every check-in but an upgrade's first) does not run the function: the WHEN is two comparisons.
CREATE TRIGGER "machines_agent_version_updated" AFTER UPDATE OF "agent_version", "removed_at" ON "machines" FOR EACH ROW WHEN (
  OLD."agent_version" IS DISTINCT FROM NEW."agent_version" OR (OLD."removed_at" IS NULL) <> (NEW."removed_at" IS NULL)
) EXECUTE FUNCTION "machines_agent_version_delta"();--> statement-breakpoint
CREATE TRIGGER "machines_agent_version_deleted" AFTER DELETE ON "machines" FOR EACH ROW WHEN (OLD."removed_at" IS NULL) EXECUTE FUNCTION "machines_agent_version_delta"();--> statement-breakpoint
-- Backfill: the live machines counted once, with writers waiting for it (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "fleet_summary_counts" ("key", "n")
SELECT fleet_agent_version_key("agent_version"), count(*) FROM "machines" WHERE "removed_at" IS NULL GROUP BY 1
ON CONFLICT ("key") DO UPDATE SET "n" = "fleet_summary_counts"."n" + excluded."n";
