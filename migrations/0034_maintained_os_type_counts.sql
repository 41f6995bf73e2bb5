-- Hand-written: the live machines per OS type (the count of the computers page filtered on an OS
-- type alone), maintained like the agents per version (migration 0032, docs/fleet-counts.md): a
-- row trigger on machines appends the change of a machine's contribution to fleet_summary_deltas in
-- the writer's transaction, the upkeep folds it into fleet_summary_counts, a read sums both.
-- Key: 'os_type:' || the type.
CREATE FUNCTION "machines_os_type_delta"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL THEN
    INSERT INTO fleet_summary_deltas (key, n) VALUES ('os_type:' || OLD.os_type, -1);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL THEN
    INSERT INTO fleet_summary_deltas (key, n) VALUES ('os_type:' || NEW.os_type, 1);
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_os_type_inserted" AFTER INSERT ON "machines" FOR EACH ROW WHEN (NEW."removed_at" IS NULL) EXECUTE FUNCTION "machines_os_type_delta"();--> statement-breakpoint
-- A check-in does not change the OS type (but the rare one that says it changed): the WHEN is two comparisons.
CREATE TRIGGER "machines_os_type_updated" AFTER UPDATE OF "os_type", "removed_at" ON "machines" FOR EACH ROW WHEN (
  OLD."os_type" IS DISTINCT FROM NEW."os_type" OR (OLD."removed_at" IS NULL) <> (NEW."removed_at" IS NULL)
) EXECUTE FUNCTION "machines_os_type_delta"();--> statement-breakpoint
CREATE TRIGGER "machines_os_type_deleted" AFTER DELETE ON "machines" FOR EACH ROW WHEN (OLD."removed_at" IS NULL) EXECUTE FUNCTION "machines_os_type_delta"();--> statement-breakpoint
-- Backfill: the live machines counted once, with writers waiting for it (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "fleet_summary_counts" ("key", "n")
SELECT 'os_type:' || "os_type", count(*) FROM "machines" WHERE "removed_at" IS NULL GROUP BY 1
ON CONFLICT ("key") DO UPDATE SET "n" = "fleet_summary_counts"."n" + excluded."n";
