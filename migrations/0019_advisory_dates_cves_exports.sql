CREATE TABLE "cve_tracker_fixes" (
	"source" text NOT NULL,
	"cve_id" text NOT NULL,
	"package" text NOT NULL,
	"release" text NOT NULL,
	"fixed_version" text NOT NULL,
	"severity" "severity",
	"description" text,
	CONSTRAINT "cve_tracker_fixes_source_cve_id_package_release_pk" PRIMARY KEY("source","cve_id","package","release")
);
--> statement-breakpoint
CREATE TABLE "cve_tracker_imports" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"source" text NOT NULL,
	"location" text NOT NULL,
	"imported_at" timestamp with time zone DEFAULT now() NOT NULL,
	"fixes" integer NOT NULL,
	"cves" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "server_secrets" (
	"name" text PRIMARY KEY NOT NULL,
	"secret" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "pending_updates" ADD COLUMN "advisory_issued_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "cve_tracker_fixes_package_idx" ON "cve_tracker_fixes" USING btree ("package","release");