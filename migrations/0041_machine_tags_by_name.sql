CREATE TABLE "machine_tags" (
	"tag" text NOT NULL,
	"name" text NOT NULL,
	"machine_id" uuid NOT NULL,
	CONSTRAINT "machine_tags_tag_name_machine_id_pk" PRIMARY KEY("tag","name","machine_id")
);
--> statement-breakpoint
-- Hand-written: machine_tags holds, for every live machine, one row per distinct tag with its name
-- and id, in the writer's transaction: a row trigger on machines replaces a machine's rows when its
-- tags, its name or its liveness change (insert, delete, and an update of those WHEN one changed: a
-- check-in that keeps its name, a report, pay the WHEN's comparisons). The old rows are found by
-- the primary key (the old tags, name and id), so no other index is written.
CREATE FUNCTION "machines_tag_rows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL AND cardinality(OLD.tags) > 0 THEN
    DELETE FROM machine_tags WHERE tag = ANY (OLD.tags) AND name = OLD.name AND machine_id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL AND cardinality(NEW.tags) > 0 THEN
    INSERT INTO machine_tags (tag, name, machine_id) SELECT DISTINCT tag, NEW.name, NEW.id FROM unnest(NEW.tags) AS tag;
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_tag_rows_inserted" AFTER INSERT ON "machines" FOR EACH ROW WHEN (NEW."removed_at" IS NULL AND cardinality(NEW."tags") > 0) EXECUTE FUNCTION "machines_tag_rows"();--> statement-breakpoint
CREATE TRIGGER "machines_tag_rows_updated" AFTER UPDATE OF "tags", "name", "removed_at" ON "machines" FOR EACH ROW WHEN (
  OLD."tags" IS DISTINCT FROM NEW."tags" OR OLD."name" IS DISTINCT FROM NEW."name" OR (OLD."removed_at" IS NULL) <> (NEW."removed_at" IS NULL)
) EXECUTE FUNCTION "machines_tag_rows"();--> statement-breakpoint
CREATE TRIGGER "machines_tag_rows_deleted" AFTER DELETE ON "machines" FOR EACH ROW WHEN (OLD."removed_at" IS NULL AND cardinality(OLD."tags") > 0) EXECUTE FUNCTION "machines_tag_rows"();--> statement-breakpoint
CREATE FUNCTION "machines_tag_rows_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM machine_tags;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_tag_rows_truncated" AFTER TRUNCATE ON "machines" FOR EACH STATEMENT EXECUTE FUNCTION "machines_tag_rows_truncated"();--> statement-breakpoint
-- Backfill: the live machines' tags, with writers waiting for it (readers do not).
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "machine_tags" ("tag", "name", "machine_id")
SELECT DISTINCT t.tag, m."name", m."id" FROM "machines" m CROSS JOIN LATERAL unnest(m."tags") AS t(tag) WHERE m."removed_at" IS NULL;
