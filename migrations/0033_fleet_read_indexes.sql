CREATE INDEX "machines_live_os_type_name_idx" ON "machines" USING btree ("os_type","name","id") WHERE "machines"."removed_at" is null;--> statement-breakpoint
CREATE INDEX "machines_live_tags_idx" ON "machines" USING gin ("tags") WHERE "machines"."removed_at" is null;--> statement-breakpoint
CREATE INDEX "pending_updates_name_idx" ON "pending_updates" USING btree ("name","classification");--> statement-breakpoint
CREATE INDEX "pending_updates_source_package_idx" ON "pending_updates" USING btree ("source_package") WHERE "pending_updates"."source_package" is not null;