CREATE TABLE "machine_name_grams" (
	"gram" text NOT NULL,
	"name" text NOT NULL,
	"machine_id" uuid NOT NULL,
	CONSTRAINT "machine_name_grams_gram_name_machine_id_pk" PRIMARY KEY("gram","name","machine_id")
);
--> statement-breakpoint
-- Hand-written: machine_name_grams holds, for every live machine, one row per distinct part of one
-- or two characters of its lowercased name, with its name and id (src/db/schema.ts), so that a part
-- of a name that short (which the trigram index of 0040 cannot look up) finds its machines by key in
-- name order. A name's parts as ILIKE compares them: in a UTF8 database ILIKE lowercases both sides
-- with lower(), so `name ILIKE '%ab%'` holds exactly when lower('ab') is one of name_grams(name).
CREATE FUNCTION "name_grams"(name text) RETURNS SETOF text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT DISTINCT substr(n, i, k) FROM (SELECT lower(name) AS n) l, generate_series(1, 2) k, generate_series(1, length(n) - k + 1) i
$$;--> statement-breakpoint
-- A row trigger on machines replaces a machine's rows when its name or its liveness changes (as 0041's
-- for tags): a check-in or a report, which keep the name, pay the WHEN's comparison and write nothing.
CREATE FUNCTION "machines_name_gram_rows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.removed_at IS NULL THEN
    DELETE FROM machine_name_grams WHERE gram = ANY (ARRAY(SELECT name_grams(OLD.name))) AND name = OLD.name AND machine_id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.removed_at IS NULL THEN
    INSERT INTO machine_name_grams (gram, name, machine_id) SELECT g, NEW.name, NEW.id FROM name_grams(NEW.name) AS g;
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_name_gram_rows_inserted" AFTER INSERT ON "machines" FOR EACH ROW WHEN (NEW."removed_at" IS NULL) EXECUTE FUNCTION "machines_name_gram_rows"();--> statement-breakpoint
CREATE TRIGGER "machines_name_gram_rows_updated" AFTER UPDATE OF "name", "removed_at" ON "machines" FOR EACH ROW WHEN (
  OLD."name" IS DISTINCT FROM NEW."name" OR (OLD."removed_at" IS NULL) <> (NEW."removed_at" IS NULL)
) EXECUTE FUNCTION "machines_name_gram_rows"();--> statement-breakpoint
CREATE TRIGGER "machines_name_gram_rows_deleted" AFTER DELETE ON "machines" FOR EACH ROW WHEN (OLD."removed_at" IS NULL) EXECUTE FUNCTION "machines_name_gram_rows"();--> statement-breakpoint
CREATE FUNCTION "machines_name_gram_rows_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM machine_name_grams;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "machines_name_gram_rows_truncated" AFTER TRUNCATE ON "machines" FOR EACH STATEMENT EXECUTE FUNCTION "machines_name_gram_rows_truncated"();--> statement-breakpoint
-- Fill: the live machines' parts, in key order (the key's pages are written once, left to right), with
-- writers waiting for it (readers do not). Then statistics, which the page's plan depends on.
LOCK TABLE "machines" IN EXCLUSIVE MODE;--> statement-breakpoint
INSERT INTO "machine_name_grams" ("gram", "name", "machine_id")
SELECT g.gram, m."name", m."id" FROM "machines" m CROSS JOIN LATERAL name_grams(m."name") AS g(gram) WHERE m."removed_at" IS NULL
ORDER BY 1, 2, 3;--> statement-breakpoint
ANALYZE "machine_name_grams";
