ALTER TABLE "agent_commands" ADD COLUMN "last_heard_at" timestamp with time zone DEFAULT now();--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "reoffered_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "machine_runs" ADD COLUMN "reboot_by" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "machine_runs_pending_idx" ON "machine_runs" USING btree ("run_id","ring","machine_name","id") WHERE "machine_runs"."status" = 'PENDING';--> statement-breakpoint
CREATE INDEX "machine_runs_running_idx" ON "machine_runs" USING btree ("run_id","ring") WHERE "machine_runs"."ended_at" is null and "machine_runs"."status" <> 'PENDING';--> statement-breakpoint
CREATE INDEX "machine_runs_run_status_idx" ON "machine_runs" USING btree ("run_id","ring","status");