DROP INDEX "machines_summary_next_at_idx";--> statement-breakpoint
ALTER TABLE "fleet_summary_settings" ADD COLUMN "generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "machines" ADD COLUMN "summary_generation" integer DEFAULT 0;--> statement-breakpoint
CREATE INDEX "machines_summary_generation_next_at_idx" ON "machines" USING btree ("summary_generation","summary_next_at");--> statement-breakpoint
-- Hand-written (docs/fleet-counts.md, "Thresholds"): a change of thresholds no longer re-evaluates
-- every machine in the reader's statement (at 1,000,000 machines it ran for minutes, held every
-- machine row and was cut by the statement timeout, so the summary could not be read at all). The
-- reader counts one generation more; each machine records the generation its state was evaluated
-- in; readers evaluate the machines of an older generation themselves (an index range, as for a
-- passed instant) until the upkeep's sweep has re-evaluated them in batches.
-- Removed machines are not counted: no generation, so that they never sit in the stale range.
UPDATE "machines" SET "summary_generation" = NULL WHERE "removed_at" IS NOT NULL;--> statement-breakpoint
-- 0027's, with the generation of the thresholds recorded.
CREATE OR REPLACE FUNCTION "machines_fleet_summary_state"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s fleet_summary_settings;
BEGIN
  IF NEW.removed_at IS NOT NULL THEN
    NEW.summary_state := NULL;
    NEW.summary_overdue := NULL;
    NEW.summary_next_at := NULL;
    NEW.summary_generation := NULL;
    RETURN NEW;
  END IF;
  SELECT * INTO s FROM fleet_summary_settings WHERE id = 1;
  NEW.summary_state := fleet_summary_compliance(NEW.os_type, NEW.last_assessed_at, NEW.baseline_id, NEW.critical_count, NEW.security_count, NEW.non_compliant_from, NEW.summary_at, s)
    || ':' || fleet_summary_readiness(NEW.management_enabled, NEW.last_seen_at, NEW.summary_at, s);
  NEW.summary_overdue := fleet_summary_overdue(NEW.sla_due_dates, NEW.summary_at);
  NEW.summary_next_at := fleet_summary_next_at(NEW.os_type, NEW.management_enabled, NEW.last_seen_at, NEW.last_assessed_at, NEW.baseline_id, NEW.non_compliant_from, NEW.sla_due_dates, NEW.summary_at, s);
  NEW.summary_generation := s.generation;
  RETURN NEW;
END
$$;
