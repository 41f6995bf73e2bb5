CREATE TYPE "public"."classification" AS ENUM('CRITICAL', 'SECURITY', 'OTHER', 'UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES');--> statement-breakpoint
CREATE TYPE "public"."environment" AS ENUM('AZURE', 'AWS', 'GCP', 'ON_PREMISES');--> statement-breakpoint
CREATE TYPE "public"."os_type" AS ENUM('LINUX', 'WINDOWS');--> statement-breakpoint
CREATE TYPE "public"."severity" AS ENUM('CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW');--> statement-breakpoint
CREATE TABLE "agent_commands" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"machine_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "assessments" (
	"id" uuid PRIMARY KEY NOT NULL,
	"machine_id" uuid NOT NULL,
	"trigger" text NOT NULL,
	"backend" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"reboot_pending" boolean NOT NULL,
	"critical_count" integer NOT NULL,
	"security_count" integer NOT NULL,
	"other_count" integer NOT NULL,
	"repository_problems" jsonb DEFAULT '[]'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "enrollment_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"description" text NOT NULL,
	"secret_hash" text NOT NULL,
	"default_tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"max_uses" integer,
	"use_count" integer DEFAULT 0 NOT NULL,
	"expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "enrollment_keys_secret_hash_unique" UNIQUE("secret_hash")
);
--> statement-breakpoint
CREATE TABLE "machines" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"os_type" "os_type" NOT NULL,
	"os_name" text NOT NULL,
	"os_version" text NOT NULL,
	"kernel" text,
	"environment" "environment" NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"agent_version" text,
	"boot_id" text,
	"package_manager" text,
	"warnings" text[] DEFAULT '{}'::text[] NOT NULL,
	"management_enabled" boolean DEFAULT true NOT NULL,
	"credential_hash" text,
	"enrollment_key_id" uuid,
	"enrolled_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone,
	"last_assessed_at" timestamp with time zone,
	"latest_assessment_id" uuid,
	"reboot_pending" boolean DEFAULT false NOT NULL,
	"critical_count" integer DEFAULT 0 NOT NULL,
	"security_count" integer DEFAULT 0 NOT NULL,
	"other_count" integer DEFAULT 0 NOT NULL,
	"last_assessment_error" jsonb,
	"removed_at" timestamp with time zone,
	CONSTRAINT "machines_credential_hash_unique" UNIQUE("credential_hash")
);
--> statement-breakpoint
CREATE TABLE "pending_updates" (
	"assessment_id" uuid NOT NULL,
	"machine_id" uuid NOT NULL,
	"name" text NOT NULL,
	"arch" text DEFAULT '' NOT NULL,
	"installed_version" text,
	"available_version" text NOT NULL,
	"classification" "classification" NOT NULL,
	"severity" "severity",
	"advisory_ids" text[] DEFAULT '{}'::text[] NOT NULL,
	"cve_ids" text[] DEFAULT '{}'::text[] NOT NULL,
	"reboot_suggested" boolean DEFAULT false NOT NULL,
	"repository" text,
	CONSTRAINT "pending_updates_assessment_id_name_arch_pk" PRIMARY KEY("assessment_id","name","arch")
);
--> statement-breakpoint
ALTER TABLE "agent_commands" ADD CONSTRAINT "agent_commands_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "assessments" ADD CONSTRAINT "assessments_machine_id_machines_id_fk" FOREIGN KEY ("machine_id") REFERENCES "public"."machines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "machines" ADD CONSTRAINT "machines_enrollment_key_id_enrollment_keys_id_fk" FOREIGN KEY ("enrollment_key_id") REFERENCES "public"."enrollment_keys"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pending_updates" ADD CONSTRAINT "pending_updates_assessment_id_assessments_id_fk" FOREIGN KEY ("assessment_id") REFERENCES "public"."assessments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_commands_pending_idx" ON "agent_commands" USING btree ("machine_id","completed_at");--> statement-breakpoint
CREATE INDEX "assessments_machine_idx" ON "assessments" USING btree ("machine_id","finished_at");--> statement-breakpoint
CREATE INDEX "machines_name_idx" ON "machines" USING btree ("name");--> statement-breakpoint
CREATE INDEX "machines_last_seen_idx" ON "machines" USING btree ("last_seen_at");