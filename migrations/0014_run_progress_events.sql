CREATE TABLE "run_progress_events" (
	"run_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"kind" text NOT NULL,
	"machine_run_id" uuid,
	"update_names" text[] DEFAULT '{}'::text[] NOT NULL,
	"first_line_id" bigint,
	"last_line_id" bigint,
	CONSTRAINT "run_progress_events_run_id_seq_pk" PRIMARY KEY("run_id","seq")
);
--> statement-breakpoint
ALTER TABLE "deployment_runs" ADD COLUMN "progress_seq" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "run_progress_events" ADD CONSTRAINT "run_progress_events_run_id_deployment_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."deployment_runs"("id") ON DELETE cascade ON UPDATE no action;