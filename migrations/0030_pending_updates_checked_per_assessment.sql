-- Hand-written: the rule of 0005 (pending updates belong to an assessment that exists), checked
-- once per assessment a statement's rows name instead of once per row: an ingest group's COPY
-- brings about 50 rows per assessment, each of which looked its assessment up again.
CREATE OR REPLACE FUNCTION "pending_updates_belong_to_assessments"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM (SELECT DISTINCT "assessment_id" FROM "new_rows") n WHERE NOT EXISTS (SELECT 1 FROM "assessments" a WHERE a."id" = n."assessment_id") LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'pending_updates rows must belong to an assessment that exists' USING ERRCODE = 'foreign_key_violation';
	END IF;
	RETURN NULL;
END $$;
