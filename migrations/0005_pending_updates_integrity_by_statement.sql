ALTER TABLE "pending_updates" DROP CONSTRAINT "pending_updates_assessment_id_assessments_id_fk";
--> statement-breakpoint
-- Written by hand after drizzle-kit's output: the foreign key's two rules, checked once per statement
-- instead of once per row (src/db/schema.ts, pendingUpdates).
CREATE FUNCTION "pending_updates_belong_to_assessments"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM "new_rows" n WHERE NOT EXISTS (SELECT 1 FROM "assessments" a WHERE a."id" = n."assessment_id") LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'pending_updates rows must belong to an assessment that exists' USING ERRCODE = 'foreign_key_violation';
	END IF;
	RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "pending_updates_inserted_belong" AFTER INSERT ON "pending_updates" REFERENCING NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "pending_updates_belong_to_assessments"();--> statement-breakpoint
CREATE TRIGGER "pending_updates_updated_belong" AFTER UPDATE ON "pending_updates" REFERENCING NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "pending_updates_belong_to_assessments"();--> statement-breakpoint
CREATE FUNCTION "assessments_take_their_pending_updates"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM "pending_updates" p USING "old_rows" o WHERE p."assessment_id" = o."id";
	RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "assessments_deleted_take_pending_updates" AFTER DELETE ON "assessments" REFERENCING OLD TABLE AS "old_rows" FOR EACH STATEMENT EXECUTE FUNCTION "assessments_take_their_pending_updates"();
