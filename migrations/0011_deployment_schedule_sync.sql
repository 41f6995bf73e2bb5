ALTER TABLE "deployments" ADD COLUMN "schedule_version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "schedule_synced_version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "deployments_schedule_unsynced_idx" ON "deployments" USING btree ("updated_at") WHERE "deployments"."schedule_version" <> "deployments"."schedule_synced_version";