ALTER TABLE "agent_commands" ADD COLUMN "post_steps_machine_run_id" uuid;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "steps" jsonb;--> statement-breakpoint
ALTER TABLE "machine_runs" ADD COLUMN "step_results" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "agent_capabilities" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD CONSTRAINT "agent_commands_post_steps_machine_run_id_unique" UNIQUE("post_steps_machine_run_id");