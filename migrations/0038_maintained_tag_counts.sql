CREATE TABLE "machine_tag_counts" (
	"tag" text PRIMARY KEY NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "machine_tag_deltas" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tag" text NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
-- Hand-written: the live machines per tag (the count of the computers page filtered on one tag
-- alone), maintained like the live machines per OS type (0034, docs/fleet-counts.md) but in tables
-- of their own: a row trigger on machines appends the change of a machine's tags (netted: a tag it
-- keeps appends nothing; a tag listed twice counts once) to machine_tag_deltas in the writer's
-- transaction, the summary's upkeep folds it into machine_tag_counts, a read sums both.
CREATE FUNCTION "machines_tag_delta"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_tags text[] := '{}';
  new_tags text[] := '{}';
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL THEN old_tags := OLD.tags; END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL THEN new_tags := NEW.tags; END IF;
  INSERT INTO machine_tag_deltas (tag, n)
  SELECT tag, sum(n) FROM (
    SELECT DISTINCT tag, -1 AS n FROM unnest(old_tags) AS tag
    UNION ALL
    SELECT DISTINCT tag, 1 AS n FROM unnest(new_tags) AS tag
  ) t GROUP BY tag HAVING sum(n) <> 0;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_tag_inserted" AFTER INSERT ON "machines" FOR EACH ROW WHEN (NEW."removed_at" IS NULL AND cardinality(NEW."tags") > 0) EXECUTE FUNCTION "machines_tag_delta"();--> statement-breakpoint
-- A check-in or a report does not write tags: the WHEN is two comparisons.
CREATE TRIGGER "machines_tag_updated" AFTER UPDATE OF "tags", "removed_at" ON "machines" FOR EACH ROW WHEN (
  OLD."tags" IS DISTINCT FROM NEW."tags" OR (OLD."removed_at" IS NULL) <> (NEW."removed_at" IS NULL)
) EXECUTE FUNCTION "machines_tag_delta"();--> statement-breakpoint
CREATE TRIGGER "machines_tag_deleted" AFTER DELETE ON "machines" FOR EACH ROW WHEN (OLD."removed_at" IS NULL AND cardinality(OLD."tags") > 0) EXECUTE FUNCTION "machines_tag_delta"();--> statement-breakpoint
CREATE FUNCTION "machines_tag_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM machine_tag_deltas;
  DELETE FROM machine_tag_counts;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_tag_truncated" AFTER TRUNCATE ON "machines" FOR EACH STATEMENT EXECUTE FUNCTION "machines_tag_truncated"();--> statement-breakpoint
-- Backfill: the live machines' tags counted once, with writers waiting for it (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "machine_tag_counts" ("tag", "n")
SELECT t.tag, count(*) FROM "machines" m CROSS JOIN LATERAL (SELECT DISTINCT tag FROM unnest(m."tags") AS tag) t WHERE m."removed_at" IS NULL GROUP BY t.tag;
