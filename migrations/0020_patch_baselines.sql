CREATE TABLE "baseline_verdicts" (
	"baseline_id" uuid NOT NULL,
	"name" text NOT NULL,
	"version" text NOT NULL,
	"classification" text NOT NULL,
	"severity" text NOT NULL,
	"approved_at" timestamp with time zone NOT NULL,
	"due_at" timestamp with time zone,
	CONSTRAINT "baseline_verdicts_baseline_id_name_version_classification_severity_pk" PRIMARY KEY("baseline_id","name","version","classification","severity")
);
--> statement-breakpoint
CREATE TABLE "baselines" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"os_type" "os_type" NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"rules" jsonb NOT NULL,
	"approved_patterns" text[] DEFAULT '{}'::text[] NOT NULL,
	"rejected_patterns" text[] DEFAULT '{}'::text[] NOT NULL,
	"sla_targets" jsonb NOT NULL,
	"time_zone" text DEFAULT 'UTC' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "update_first_seen" (
	"name" text NOT NULL,
	"version" text NOT NULL,
	"classification" text NOT NULL,
	"severity" text DEFAULT '' NOT NULL,
	"first_seen_at" timestamp with time zone NOT NULL,
	CONSTRAINT "update_first_seen_name_version_classification_severity_pk" PRIMARY KEY("name","version","classification","severity")
);
--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "use_baseline" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "baseline_id" uuid;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "non_compliant_from" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "sla_due_dates" timestamp with time zone[] DEFAULT '{}'::timestamptz[] NOT NULL;--> statement-breakpoint
ALTER TABLE "baseline_verdicts" ADD CONSTRAINT "baseline_verdicts_baseline_id_baselines_id_fk" FOREIGN KEY ("baseline_id") REFERENCES "public"."baselines"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "baselines_name_idx" ON "baselines" USING btree ("name");--> statement-breakpoint
-- Backfill: every update kind an assessment already stored lists, first seen when the earliest of
-- those assessments was made (on the server's clock). No baseline exists yet, so there are no
-- verdicts to compute and every machine keeps the built-in baseline.
INSERT INTO "update_first_seen" ("name", "version", "classification", "severity", "first_seen_at")
SELECT pu."name", pu."available_version", pu."classification"::text, coalesce(pu."severity"::text, ''), min(a."assessed_at")
FROM "pending_updates" pu JOIN "assessments" a ON a."id" = pu."assessment_id"
GROUP BY 1, 2, 3, 4;
