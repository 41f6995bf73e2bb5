CREATE TABLE "console_sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"secret_hash" text NOT NULL,
	"token_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"source_address" text,
	CONSTRAINT "console_sessions_secret_hash_unique" UNIQUE("secret_hash")
);
--> statement-breakpoint
ALTER TABLE "console_sessions" ADD CONSTRAINT "console_sessions_token_id_api_tokens_id_fk" FOREIGN KEY ("token_id") REFERENCES "public"."api_tokens"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "console_sessions_token_idx" ON "console_sessions" USING btree ("token_id");--> statement-breakpoint
CREATE INDEX "console_sessions_expires_idx" ON "console_sessions" USING btree ("expires_at");--> statement-breakpoint
-- Written by hand after drizzle-kit's output: a token revoked, re-dated or deleted, and a session
-- ended, re-dated or deleted, is announced on the events channel (src/events/pubsub.ts, in its
-- envelope {"type", "detail"}) by whatever wrote it: the API on any replica, `fleetpatch token
-- revoke`, or SQL by hand. Every API replica then closes the subscription sockets it no longer
-- trusts (src/api/socketAccess.ts).
CREATE FUNCTION "api_tokens_announce_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('fleetpatch_events', json_build_object('type', 'apiTokenChanged', 'detail', json_build_object('tokenId', CASE WHEN TG_OP = 'DELETE' THEN OLD."id" ELSE NEW."id" END))::text);
	RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "api_tokens_changed_announce" AFTER UPDATE OF "revoked_at", "expires_at" ON "api_tokens" FOR EACH ROW WHEN (OLD."revoked_at" IS DISTINCT FROM NEW."revoked_at" OR OLD."expires_at" IS DISTINCT FROM NEW."expires_at") EXECUTE FUNCTION "api_tokens_announce_change"();--> statement-breakpoint
CREATE TRIGGER "api_tokens_deleted_announce" AFTER DELETE ON "api_tokens" FOR EACH ROW EXECUTE FUNCTION "api_tokens_announce_change"();--> statement-breakpoint
CREATE FUNCTION "console_sessions_announce_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('fleetpatch_events', json_build_object('type', 'consoleSessionChanged', 'detail', json_build_object('sessionId', CASE WHEN TG_OP = 'DELETE' THEN OLD."id" ELSE NEW."id" END))::text);
	RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "console_sessions_changed_announce" AFTER UPDATE OF "ended_at", "expires_at" ON "console_sessions" FOR EACH ROW WHEN (OLD."ended_at" IS DISTINCT FROM NEW."ended_at" OR OLD."expires_at" IS DISTINCT FROM NEW."expires_at") EXECUTE FUNCTION "console_sessions_announce_change"();--> statement-breakpoint
CREATE TRIGGER "console_sessions_deleted_announce" AFTER DELETE ON "console_sessions" FOR EACH ROW EXECUTE FUNCTION "console_sessions_announce_change"();
