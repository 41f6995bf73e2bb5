-- pg_trgm ships with PostgreSQL (contrib: the embedded PostgreSQL, the postgres image of
-- deploy/compose and the managed services all have it) and is a trusted extension since
-- PostgreSQL 13: the owner of the database may create it without a superuser.
CREATE EXTENSION IF NOT EXISTS "pg_trgm";--> statement-breakpoint
CREATE INDEX "machines_live_name_trgm_idx" ON "machines" USING gin ("name" gin_trgm_ops) WHERE "machines"."removed_at" is null;
