ALTER TYPE "public"."deployment_run_status" ADD VALUE 'HALTED';--> statement-breakpoint
CREATE TABLE "deployment_run_rings" (
	"run_id" uuid NOT NULL,
	"ring" integer NOT NULL,
	"name" text NOT NULL,
	"definition" jsonb NOT NULL,
	"status" text DEFAULT 'PENDING' NOT NULL,
	"machine_count" integer NOT NULL,
	"failed_count" integer,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"window_ends_at" timestamp with time zone,
	"soak_ends_at" timestamp with time zone,
	"reason" text,
	"decided_by" text,
	"decided_at" timestamp with time zone,
	CONSTRAINT "deployment_run_rings_run_id_ring_pk" PRIMARY KEY("run_id","ring")
);
--> statement-breakpoint
ALTER TABLE "deployment_runs" ADD COLUMN "update_set" jsonb;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rings" jsonb;--> statement-breakpoint
ALTER TABLE "machine_runs" ADD COLUMN "ring" integer;--> statement-breakpoint
ALTER TABLE "deployment_run_rings" ADD CONSTRAINT "deployment_run_rings_run_id_deployment_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."deployment_runs"("id") ON DELETE cascade ON UPDATE no action;