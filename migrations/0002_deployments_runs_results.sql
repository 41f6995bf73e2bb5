CREATE TYPE "public"."deployment_run_status" AS ENUM('SCHEDULED', 'IN_PROGRESS', 'SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED');--> statement-breakpoint
CREATE TYPE "public"."machine_run_status" AS ENUM('PENDING', 'IN_PROGRESS', 'REBOOTING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'NOT_STARTED');--> statement-breakpoint
CREATE TYPE "public"."reboot_setting" AS ENUM('IF_REQUIRED', 'NEVER', 'ALWAYS', 'REBOOT_ONLY');--> statement-breakpoint
CREATE TYPE "public"."update_result_status" AS ENUM('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED', 'NOT_SELECTED');--> statement-breakpoint
CREATE TABLE "deployment_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"deployment_id" uuid NOT NULL,
	"workflow_id" text NOT NULL,
	"trigger" text NOT NULL,
	"status" "deployment_run_status" DEFAULT 'SCHEDULED' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"window_ends_at" timestamp with time zone,
	"error" text,
	CONSTRAINT "deployment_runs_workflow_id_unique" UNIQUE("workflow_id")
);
--> statement-breakpoint
CREATE TABLE "deployments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"os_type" "os_type" NOT NULL,
	"machine_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"target_filter" jsonb,
	"classifications" text[] NOT NULL,
	"include_patterns" text[] DEFAULT '{}'::text[] NOT NULL,
	"exclude_patterns" text[] DEFAULT '{}'::text[] NOT NULL,
	"schedule" jsonb NOT NULL,
	"window_minutes" integer NOT NULL,
	"reboot_setting" "reboot_setting" NOT NULL,
	"max_concurrent" jsonb,
	"max_failures" jsonb,
	"paused" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "machine_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"run_id" uuid NOT NULL,
	"machine_id" uuid NOT NULL,
	"machine_name" text NOT NULL,
	"status" "machine_run_status" DEFAULT 'PENDING' NOT NULL,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"reboot_outcome" text,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "run_logs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"run_id" uuid NOT NULL,
	"machine_run_id" uuid,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"stream" text NOT NULL,
	"line" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "update_durations" (
	"machine_id" uuid NOT NULL,
	"name" text NOT NULL,
	"average_seconds" double precision NOT NULL,
	"samples" integer NOT NULL,
	CONSTRAINT "update_durations_machine_id_name_pk" PRIMARY KEY("machine_id","name")
);
--> statement-breakpoint
CREATE TABLE "update_results" (
	"machine_run_id" uuid NOT NULL,
	"run_id" uuid NOT NULL,
	"name" text NOT NULL,
	"arch" text DEFAULT '' NOT NULL,
	"classification" "classification" NOT NULL,
	"severity" "severity",
	"installed_version" text,
	"target_version" text NOT NULL,
	"reboot_suggested" boolean DEFAULT false NOT NULL,
	"order_index" integer NOT NULL,
	"expected_seconds" integer NOT NULL,
	"status" "update_result_status" NOT NULL,
	"predicted_status" "update_result_status" NOT NULL,
	"reason" text,
	"exit_code" integer,
	"error_text" text,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	CONSTRAINT "update_results_machine_run_id_name_arch_pk" PRIMARY KEY("machine_run_id","name","arch")
);
--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "payload" jsonb;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "machine_run_id" uuid;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "task_token" text;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "result" jsonb;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "last_event_seq" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "agent_commands" ADD COLUMN "canceled_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_runs" ADD CONSTRAINT "deployment_runs_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machine_runs" ADD CONSTRAINT "machine_runs_run_id_deployment_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."deployment_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machine_runs" ADD CONSTRAINT "machine_runs_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "update_results" ADD CONSTRAINT "update_results_machine_run_id_machine_runs_id_fk" FOREIGN KEY ("machine_run_id") REFERENCES "public"."machine_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deployment_runs_deployment_idx" ON "deployment_runs" USING btree ("deployment_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "deployments_name_live_idx" ON "deployments" USING btree ("name") WHERE "deployments"."deleted_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "machine_runs_run_machine_idx" ON "machine_runs" USING btree ("run_id","machine_id");--> statement-breakpoint
CREATE INDEX "run_logs_run_idx" ON "run_logs" USING btree ("run_id","id");--> statement-breakpoint
CREATE INDEX "update_results_run_idx" ON "update_results" USING btree ("run_id");--> statement-breakpoint
ALTER TABLE "agent_commands" ADD CONSTRAINT "agent_commands_machine_run_id_unique" UNIQUE("machine_run_id");