-- The computers page's sort by last assessed read along an index in either direction, as the update
-- counts' (0039): the time in microseconds since the epoch, a missing one the largest key (last
-- ascending, first descending). extract on a timestamptz is only stable (it may depend on the time
-- zone for other fields), so an index cannot use it; the epoch does not, hence the immutable wrapper.
CREATE FUNCTION "sort_micros"("t" timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (extract(epoch from t) * 1000000)::bigint $$;--> statement-breakpoint
CREATE INDEX "machines_live_assessed_asc_idx" ON "machines" USING btree (coalesce(sort_micros("last_assessed_at"), 9223372036854775807),"name","id") WHERE "machines"."removed_at" is null;--> statement-breakpoint
CREATE INDEX "machines_live_assessed_desc_idx" ON "machines" USING btree ((-coalesce(sort_micros("last_assessed_at"), 9223372036854775807)),"name","id") WHERE "machines"."removed_at" is null;
