ALTER TABLE "machine_runs" ADD COLUMN "reboot_reserve_seconds" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Hand-written backfill (carry it with this migration if it is renumbered). The machine runs
-- already stored get the reserve their install job carried, worked out then from the run's reboot
-- setting, the machine and the updates the plan selected (src/fleet/reboot.ts, rebootForecast and
-- rebootReserveSeconds, as of this migration): a run in flight goes on with the same reserve.
-- Machine runs of rings not started yet have no plan and keep 0; their ring plans them.
UPDATE "machine_runs" mr
SET "reboot_reserve_seconds" = CASE WHEN m."os_type" = 'WINDOWS' THEN 900 ELSE 600 END
FROM "deployment_runs" r, "deployments" d, "machines" m
WHERE r."id" = mr."run_id" AND d."id" = r."deployment_id" AND m."id" = mr."machine_id"
  AND CASE coalesce(r."settings"->>'rebootSetting', d."reboot_setting"::text)
    WHEN 'ALWAYS' THEN true
    WHEN 'REBOOT_ONLY' THEN true
    WHEN 'NEVER' THEN false
    ELSE m."reboot_pending" OR (
      SELECT CASE WHEN count(*) = 0 THEN false WHEN bool_or(ur."reboot_suggested") THEN true ELSE coalesce(m."package_manager", 'apt') = 'apt' END
      FROM "update_results" ur
      WHERE ur."machine_run_id" = mr."id" AND ur."predicted_status" <> 'NOT_SELECTED'
    )
  END;
