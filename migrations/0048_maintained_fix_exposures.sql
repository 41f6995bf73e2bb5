CREATE TABLE "cve_fix_exposure_counts" (
	"cve_id" text NOT NULL,
	"rank" smallint NOT NULL,
	"origin" text NOT NULL,
	"advisory_rank" smallint NOT NULL,
	"machines" integer NOT NULL,
	CONSTRAINT "cve_fix_exposure_counts_cve_id_rank_origin_advisory_rank_pk" PRIMARY KEY("cve_id","rank","origin","advisory_rank")
);
--> statement-breakpoint
CREATE TABLE "cve_fix_exposures" (
	"cve_id" text NOT NULL,
	"machine_id" uuid NOT NULL,
	"rank" smallint,
	"origin" text,
	"advisory_rank" smallint,
	"reach" integer NOT NULL,
	CONSTRAINT "cve_fix_exposures_cve_id_machine_id_pk" PRIMARY KEY("cve_id","machine_id")
);
--> statement-breakpoint
CREATE TABLE "cve_fix_reach_counts" (
	"cve_id" text NOT NULL,
	"rank" smallint NOT NULL,
	"origin" text NOT NULL,
	"machines" integer NOT NULL,
	CONSTRAINT "cve_fix_reach_counts_cve_id_rank_origin_pk" PRIMARY KEY("cve_id","rank","origin")
);
--> statement-breakpoint
CREATE TABLE "cve_fix_refresh_pending" (
	"package" text PRIMARY KEY NOT NULL
);
--> statement-breakpoint
CREATE INDEX "cve_fix_exposures_machine_idx" ON "cve_fix_exposures" USING btree ("machine_id");--> statement-breakpoint
-- Hand-written (after drizzle-kit's output; carry it if this migration is renumbered): the imported
-- fixes' exposures maintained per CVE and machine (docs/fleet-counts.md, "The imported fixes'
-- exposures: maintained"). A machine's release as imported fixes name it: the twin of fixRelease
-- (src/fleet/cves.ts) and of fixReleaseSql (src/db/cves.ts); a release added to DEBIAN_CODENAMES needs a
-- migration that redefines it (test/integration/fleetCounts.test.ts holds the two to each other).
CREATE FUNCTION fix_release(package_manager text, os_name text, os_version text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN package_manager = 'apt' AND os_name ILIKE '%debian%' THEN
      (CASE split_part(os_version, '.', 1) WHEN '10' THEN 'buster' WHEN '11' THEN 'bullseye' WHEN '12' THEN 'bookworm' WHEN '13' THEN 'trixie' WHEN '14' THEN 'forky' END)
    WHEN package_manager = 'apt' AND os_name ILIKE '%ubuntu%' AND os_version ~ '^[0-9]{2}[.][0-9]{2}$' THEN 'ubuntu:' || os_version
  END
$$;
--> statement-breakpoint
-- Each fix's version as dpkg_version_key orders it (migration 0044), stored: the exposures compare it
-- with a row's two keys, computed once per row (a key costs tens of microseconds; three per fix and
-- row made the ingest of a Debian fleet with fixes imported cost 0.1 s of CPU a report). Not in
-- src/db/schema.ts: written by PostgreSQL only.
ALTER TABLE cve_tracker_fixes ADD COLUMN fixed_key bytea GENERATED ALWAYS AS (dpkg_version_key(fixed_version)) STORED;
--> statement-breakpoint
-- What cve_fix_exposures holds for these machines, computed from each live one's latest assessment
-- and release: every latest pending row with an installed version, joined with the fixes of its
-- package (source package, else name: trackerPackage) for the machine's release that it reaches
-- (dpkg_reaches_fix, migration 0044). `rank`/`origin`: importedExposureGroups' choice (per row the
-- first reached fix by source, rows whose advisories name the CVE left out; per machine the most
-- severe, DEBIAN_TRACKER before OSV among equals); `advisory_rank`: the most severe of the latest rows
-- whose advisories name the CVE; `reach`: a bit per (rank, origin) of every fix reached by any row.
CREATE FUNCTION cve_fix_exposures_of(ids uuid[])
RETURNS TABLE (cve_id text, machine_id uuid, rank smallint, origin text, advisory_rank smallint, reach integer)
LANGUAGE sql STABLE AS $$
  WITH m AS MATERIALIZED (
    SELECT m.id, m.latest_assessment_id, fix_release(m.package_manager, m.os_name, m.os_version) AS release
    FROM machines m
    WHERE m.id = ANY(ids) AND m.removed_at IS NULL AND m.latest_assessment_id IS NOT NULL
  ),
  -- The latest rows with an installed version whose package has a fix for the machine's release, with
  -- their versions' keys computed once per row (dpkg_reaches_fix's comparison: installed < fixed <= available).
  fixable AS MATERIALIZED (
    SELECT m.id AS machine_id, m.latest_assessment_id AS assessment_id, m.release, pu.name, pu.arch, pu.cve_ids, coalesce(pu.source_package, pu.name) AS package,
           dpkg_version_key(pu.installed_version) AS installed_key, dpkg_version_key(pu.available_version) AS available_key
    FROM m
    JOIN pending_updates pu ON pu.assessment_id = m.latest_assessment_id
    WHERE m.release IS NOT NULL AND pu.installed_version IS NOT NULL
      -- A probe of cve_tracker_fixes_package_idx per row (offset 0: not flattened; as a semi-join the
      -- planner crossed the machines with every fixed package and read each machine's rows once per
      -- package: 0.95 s for 7 machines at 2,000 fixed packages, the ingest's cost with the tracker imported).
      AND EXISTS (SELECT 1 FROM cve_tracker_fixes t WHERE t.package = coalesce(pu.source_package, pu.name) AND t.release = m.release OFFSET 0)
  ),
  -- Each such row with each fix it reaches, through cve_tracker_fixes_package_idx (offset 0: not
  -- flattened; joined on the release alone, the planner crossed a page of machines with every fix and
  -- read each machine's rows once per fix: 7 s for 500 machines at 102 fixes).
  reached AS MATERIALIZED (
    SELECT f.machine_id, f.assessment_id, f.name, f.arch, f.cve_ids @> ARRAY[t.cve_id] AS named, t.cve_id, t.source,
           (CASE t.severity::text WHEN 'CRITICAL' THEN 4 WHEN 'IMPORTANT' THEN 3 WHEN 'MODERATE' THEN 2 WHEN 'LOW' THEN 1 ELSE 0 END) AS rank,
           (CASE WHEN t.source LIKE 'OSV%' THEN 'OSV' ELSE 'DEBIAN_TRACKER' END) AS origin
    FROM fixable f
    CROSS JOIN LATERAL (
      SELECT t.cve_id, t.source, t.severity, t.fixed_key FROM cve_tracker_fixes t
      WHERE t.package = f.package AND t.release = f.release OFFSET 0) t
    WHERE f.installed_key < t.fixed_key AND t.fixed_key <= f.available_key
  ),
  -- Per (machine, CVE) in one pass over the fixes reached, and the advisories' rank looked up per
  -- result row through the machine's rows (the estimates inside this function are of one row each:
  -- joined, two aggregates were crossed in a nested loop that recomputed one per row of the other,
  -- 0.8 s for 7 machines). `first`: per row and CVE the first fix by source; rows whose advisories
  -- name the CVE are left out of rank and origin, not of reach.
  grouped AS MATERIALIZED (
    SELECT r.machine_id, r.assessment_id, r.cve_id,
           max(r.rank) FILTER (WHERE r.first AND NOT r.named) AS rank,
           (array_agg(r.origin ORDER BY r.rank DESC, r.origin COLLATE "C") FILTER (WHERE r.first AND NOT r.named))[1] AS origin,
           bit_or(1 << (r.rank * 2 + (r.origin = 'OSV')::int)) AS reach
    FROM (SELECT r.*, row_number() OVER (PARTITION BY r.machine_id, r.name, r.arch, r.cve_id ORDER BY r.source) = 1 AS first FROM reached r) r
    GROUP BY 1, 2, 3
  )
  SELECT g.cve_id, g.machine_id, g.rank::smallint, g.origin,
         (SELECT max(CASE pu.severity::text WHEN 'CRITICAL' THEN 4 WHEN 'IMPORTANT' THEN 3 WHEN 'MODERATE' THEN 2 WHEN 'LOW' THEN 1 ELSE 0 END)
          FROM pending_updates pu WHERE pu.assessment_id = g.assessment_id AND pu.cve_ids @> ARRAY[g.cve_id])::smallint,
         g.reach::int
  FROM grouped g
$$;
--> statement-breakpoint
-- Recomputes these machines' rows and applies the difference to the two count tables, netted (a
-- report exposing a machine as its last did writes nothing). The machines' rows are locked first, in
-- id order (the ingest and a removal hold them already), then the count rows in key order, each
-- table in the order of the statement's text (the main insert first, then the CTEs in plan order),
-- so that every writer takes them in one order. Only the holder of a machine's row lock writes its
-- cve_fix_exposures rows.
CREATE FUNCTION cve_fix_refresh(ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- No fix imported and no row to take back: nothing to compute (a fleet without imports pays this
  -- look-up only). The fixes cannot change meanwhile for the ingest (FIX_LOCK, shared); a removal
  -- only takes rows back.
  IF NOT EXISTS (SELECT 1 FROM cve_tracker_fixes) AND NOT EXISTS (SELECT 1 FROM cve_fix_exposures e WHERE e.machine_id = ANY(ids)) THEN
    RETURN;
  END IF;
  PERFORM 1 FROM machines m WHERE m.id = ANY(ids) ORDER BY m.id FOR NO KEY UPDATE;
  WITH new AS MATERIALIZED (SELECT * FROM cve_fix_exposures_of(ids)),
  old AS MATERIALIZED (
    SELECT e.cve_id, e.machine_id, e.rank, e.origin, e.advisory_rank, e.reach FROM cve_fix_exposures e WHERE e.machine_id = ANY(ids)
  ),
  changed AS MATERIALIZED (
    SELECT coalesce(n.cve_id, o.cve_id) AS cve_id, coalesce(n.machine_id, o.machine_id) AS machine_id,
           n.cve_id IS NOT NULL AS has_new, n.rank AS n_rank, n.origin AS n_origin, n.advisory_rank AS n_advisory, n.reach AS n_reach,
           o.cve_id IS NOT NULL AS has_old, o.rank AS o_rank, o.origin AS o_origin, o.advisory_rank AS o_advisory, o.reach AS o_reach
    FROM new n FULL JOIN old o ON o.cve_id = n.cve_id AND o.machine_id = n.machine_id
    WHERE n.cve_id IS NULL OR o.cve_id IS NULL
       OR (n.rank, n.origin, n.advisory_rank, n.reach) IS DISTINCT FROM (o.rank, o.origin, o.advisory_rank, o.reach)
  ),
  gone AS (
    DELETE FROM cve_fix_exposures e USING changed c
    WHERE NOT c.has_new AND e.cve_id = c.cve_id AND e.machine_id = c.machine_id
  ),
  put AS (
    INSERT INTO cve_fix_exposures (cve_id, machine_id, rank, origin, advisory_rank, reach)
    SELECT c.cve_id, c.machine_id, c.n_rank, c.n_origin, c.n_advisory, c.n_reach FROM changed c WHERE c.has_new
    ORDER BY c.cve_id, c.machine_id
    ON CONFLICT (cve_id, machine_id) DO UPDATE SET rank = excluded.rank, origin = excluded.origin, advisory_rank = excluded.advisory_rank, reach = excluded.reach
  ),
  reach_delta AS (
    SELECT x.cve_id, (b.bit / 2)::smallint AS rank, (CASE WHEN b.bit % 2 = 1 THEN 'OSV' ELSE 'DEBIAN_TRACKER' END) AS origin, sum(x.sign)::int AS d
    FROM (SELECT c.cve_id, c.n_reach AS reach, 1 AS sign FROM changed c WHERE c.has_new
          UNION ALL
          SELECT c.cve_id, c.o_reach, -1 FROM changed c WHERE c.has_old) x
    CROSS JOIN generate_series(0, 9) AS b(bit)
    WHERE x.reach & (1 << b.bit) <> 0
    GROUP BY 1, 2, 3 HAVING sum(x.sign) <> 0
  ),
  reach_counts AS (
    INSERT INTO cve_fix_reach_counts (cve_id, rank, origin, machines)
    SELECT * FROM reach_delta ORDER BY 1, 2, 3
    ON CONFLICT (cve_id, rank, origin) DO UPDATE SET machines = cve_fix_reach_counts.machines + excluded.machines
  ),
  group_delta AS (
    SELECT x.cve_id, x.rank, x.origin, x.advisory_rank, sum(x.sign)::int AS d
    FROM (SELECT c.cve_id, c.n_rank AS rank, c.n_origin AS origin, coalesce(c.n_advisory, -1)::smallint AS advisory_rank, 1 AS sign FROM changed c WHERE c.has_new AND c.n_rank IS NOT NULL
          UNION ALL
          SELECT c.cve_id, c.o_rank, c.o_origin, coalesce(c.o_advisory, -1)::smallint, -1 FROM changed c WHERE c.has_old AND c.o_rank IS NOT NULL) x
    GROUP BY 1, 2, 3, 4 HAVING sum(x.sign) <> 0
  )
  INSERT INTO cve_fix_exposure_counts (cve_id, rank, origin, advisory_rank, machines)
  SELECT * FROM group_delta ORDER BY 1, 2, 3, 4
  ON CONFLICT (cve_id, rank, origin, advisory_rank) DO UPDATE SET machines = cve_fix_exposure_counts.machines + excluded.machines;
END
$$;
--> statement-breakpoint
-- A check-in that changes the machine's release (an OS upgrade, another distribution) recomputes its
-- rows under the row's lock. The WHEN costs every check-in that writes three comparisons; the
-- release is compared only when a fact changed. The shared lock: an import's replacement of the
-- fixes (src/db/cves.ts, FIX_LOCK) is not computed against half-way.
CREATE FUNCTION cve_fix_refresh_on_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF fix_release(OLD.package_manager, OLD.os_name, OLD.os_version) IS DISTINCT FROM fix_release(NEW.package_manager, NEW.os_name, NEW.os_version) THEN
    PERFORM pg_advisory_xact_lock_shared(1667656056);
    PERFORM cve_fix_refresh(ARRAY[NEW.id]);
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER machines_fix_release AFTER UPDATE OF os_name, os_version, package_manager ON machines
FOR EACH ROW WHEN (OLD.os_name IS DISTINCT FROM NEW.os_name OR OLD.os_version IS DISTINCT FROM NEW.os_version OR OLD.package_manager IS DISTINCT FROM NEW.package_manager)
EXECUTE FUNCTION cve_fix_refresh_on_release();
--> statement-breakpoint
-- The backfill: every live machine's rows in one set-based statement, then the counts from them.
-- Machines are locked against writes for it (API processes older than this migration do not
-- maintain the rows: stop them first, as for 0043).
LOCK TABLE "machines" IN SHARE MODE;
--> statement-breakpoint
-- Only the live machines whose latest assessment lists a package a fix names (through
-- pending_updates_name_idx and pending_updates_source_package_idx, as refreshFixExposures finds them).
INSERT INTO cve_fix_exposures (cve_id, machine_id, rank, origin, advisory_rank, reach)
SELECT * FROM cve_fix_exposures_of(array(
  SELECT DISTINCT m.id FROM (SELECT DISTINCT package FROM cve_tracker_fixes) f
  CROSS JOIN LATERAL (
    SELECT p.machine_id, p.assessment_id FROM pending_updates p WHERE p.name = f.package AND p.source_package IS NULL
    UNION ALL
    SELECT p.machine_id, p.assessment_id FROM pending_updates p WHERE p.source_package = f.package) p
  JOIN machines m ON m.id = p.machine_id AND m.latest_assessment_id = p.assessment_id AND m.removed_at IS NULL));
--> statement-breakpoint
INSERT INTO cve_fix_exposure_counts (cve_id, rank, origin, advisory_rank, machines)
SELECT cve_id, rank, origin, coalesce(advisory_rank, -1), count(*)::int FROM cve_fix_exposures WHERE rank IS NOT NULL GROUP BY 1, 2, 3, 4;
--> statement-breakpoint
INSERT INTO cve_fix_reach_counts (cve_id, rank, origin, machines)
SELECT e.cve_id, (b.bit / 2)::smallint, (CASE WHEN b.bit % 2 = 1 THEN 'OSV' ELSE 'DEBIAN_TRACKER' END), count(*)::int
FROM cve_fix_exposures e CROSS JOIN generate_series(0, 9) AS b(bit)
WHERE e.reach & (1 << b.bit) <> 0
GROUP BY 1, 2, 3;
