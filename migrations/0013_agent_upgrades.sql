CREATE TYPE "public"."agent_upgrade_machine_status" AS ENUM('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'TIMED_OUT', 'SKIPPED', 'NOT_STARTED', 'CANCELED');--> statement-breakpoint
CREATE TYPE "public"."agent_upgrade_status" AS ENUM('IN_PROGRESS', 'SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED');--> statement-breakpoint
CREATE TABLE "agent_upgrade_machines" (
	"upgrade_id" uuid NOT NULL,
	"machine_id" uuid NOT NULL,
	"machine_name" text NOT NULL,
	"order_index" integer NOT NULL,
	"from_version" text,
	"status" "agent_upgrade_machine_status" DEFAULT 'PENDING' NOT NULL,
	"code" text,
	"message" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"command_id" uuid,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	CONSTRAINT "agent_upgrade_machines_upgrade_id_machine_id_pk" PRIMARY KEY("upgrade_id","machine_id")
);
--> statement-breakpoint
CREATE TABLE "agent_upgrades" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"workflow_id" text NOT NULL,
	"to_version" text NOT NULL,
	"artifacts" jsonb NOT NULL,
	"signed_by" text NOT NULL,
	"rollback_after_seconds" integer NOT NULL,
	"max_concurrent" jsonb,
	"max_failures" jsonb,
	"targets" jsonb NOT NULL,
	"status" "agent_upgrade_status" DEFAULT 'IN_PROGRESS' NOT NULL,
	"requested_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"ended_at" timestamp with time zone,
	CONSTRAINT "agent_upgrades_workflow_id_unique" UNIQUE("workflow_id")
);
--> statement-breakpoint
ALTER TABLE "agent_upgrade_machines" ADD CONSTRAINT "agent_upgrade_machines_upgrade_id_agent_upgrades_id_fk" FOREIGN KEY ("upgrade_id") REFERENCES "public"."agent_upgrades"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_upgrade_machines" ADD CONSTRAINT "agent_upgrade_machines_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_upgrade_machines_status_idx" ON "agent_upgrade_machines" USING btree ("upgrade_id","status","order_index");--> statement-breakpoint
CREATE INDEX "agent_upgrade_machines_command_idx" ON "agent_upgrade_machines" USING btree ("command_id");