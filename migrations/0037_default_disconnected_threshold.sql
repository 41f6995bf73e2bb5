-- Hand-written: the stored compliance states follow the new default DISCONNECTED threshold (4.5
-- check-in intervals, 270 s: src/fleet/compliance.ts, defaultDisconnectedAfterMs) from the start.
-- Left at 0027's 180 s, the first summary read of a process on the defaults would re-evaluate every
-- machine (syncFleetSummaryThresholds) at some moment after the upgrade; here it happens once, in
-- the upgrade, and a fresh database already agrees with the defaults. A database whose settings
-- were changed from 0027's (a configured threshold) is left as it is. Re-evaluation as
-- syncFleetSummaryThresholds does it: writing summary_at fires the trigger that applies the change.
DO $$
BEGIN
  UPDATE "fleet_summary_settings" SET "disconnected_after_ms" = 270000 WHERE "id" = 1 AND "disconnected_after_ms" = 180000;
  IF FOUND THEN
    UPDATE "machines" SET "summary_at" = "summary_at" WHERE "removed_at" IS NULL;
  END IF;
END
$$;
