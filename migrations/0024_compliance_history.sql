CREATE TABLE "compliance_history" (
	"day" date NOT NULL,
	"group_by" text NOT NULL,
	"key" text NOT NULL,
	"label" text NOT NULL,
	"machines" integer NOT NULL,
	"compliant" integer NOT NULL,
	"non_compliant" integer NOT NULL,
	"not_assessed" integer NOT NULL,
	"overdue_machines" integer NOT NULL,
	"overdue_updates" integer NOT NULL,
	"pending_updates" integer NOT NULL,
	CONSTRAINT "compliance_history_group_by_day_key_pk" PRIMARY KEY("group_by","day","key")
);
--> statement-breakpoint
CREATE TABLE "compliance_snapshots" (
	"day" date PRIMARY KEY NOT NULL,
	"taken_at" timestamp with time zone NOT NULL,
	"trigger" text NOT NULL,
	"compute_ms" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "compliance_history" ADD CONSTRAINT "compliance_history_day_compliance_snapshots_day_fk" FOREIGN KEY ("day") REFERENCES "public"."compliance_snapshots"("day") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "compliance_history_day_idx" ON "compliance_history" USING btree ("day");