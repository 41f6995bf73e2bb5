-- dpkg's version keys (migration 0044) of the versions the imported fixes' exposures compare, kept
-- once for the fleet: cve_fix_exposures_of computed two for every row of a fixed package at every
-- report (about 20 µs each, a third of cve_fix_refresh's time with every row of a report reaching a
-- fix: BENCHMARKS.md, "Ingest with imported fixes: version keys kept"). Versions repeat across a fleet;
-- a report's are mostly known already.
CREATE TABLE "dpkg_version_keys" (
	"version" text NOT NULL,
	"key" "bytea" NOT NULL
);
--> statement-breakpoint
CREATE INDEX "dpkg_version_keys_version_idx" ON "dpkg_version_keys" USING btree ("version");
--> statement-breakpoint
-- The same rows and values as 0050's text: only where the keys come from changes.
CREATE OR REPLACE FUNCTION cve_fix_exposures_of(ids uuid[])
RETURNS TABLE (cve_id text, machine_id uuid, rank smallint, origin text, advisory_rank smallint, reach integer)
LANGUAGE sql STABLE AS $$
  WITH m AS MATERIALIZED (
    SELECT m.id, m.latest_assessment_id, fix_release(m.package_manager, m.os_name, m.os_version) AS release
    FROM machines m
    WHERE m.id = ANY(ids) AND m.removed_at IS NULL AND m.latest_assessment_id IS NOT NULL
  ),
  -- The latest rows with an installed version whose package has a fix for the machine's release.
  fixable_rows AS MATERIALIZED (
    SELECT m.id AS machine_id, m.latest_assessment_id AS assessment_id, m.release, pu.name, pu.arch, pu.cve_ids, coalesce(pu.source_package, pu.name) AS package,
           pu.installed_version, pu.available_version
    FROM m
    JOIN pending_updates pu ON pu.assessment_id = m.latest_assessment_id
    WHERE m.release IS NOT NULL AND pu.installed_version IS NOT NULL
      -- A probe of cve_tracker_fixes_package_idx per row (offset 0: not flattened; as a semi-join the
      -- planner crossed the machines with every fixed package and read each machine's rows once per
      -- package: 0.95 s for 7 machines at 2,000 fixed packages, the ingest's cost with the tracker imported).
      AND EXISTS (SELECT 1 FROM cve_tracker_fixes t WHERE t.package = coalesce(pu.source_package, pu.name) AND t.release = m.release OFFSET 0)
  ),
  -- The kept keys of their versions, read at once as one object (version → key in hex) that each row
  -- looks its versions up in. Looked up by a subquery per row, the ingest with fixes cost PostgreSQL
  -- more CPU than computing the keys had (12.1 ms a report against 10.5 in one bench run); joined, the
  -- estimates of one row each inside this function could make a nested loop over both sets.
  kept AS MATERIALIZED (
    SELECT coalesce(jsonb_object_agg(k.version, encode(k.key, 'hex')), '{}') AS keys
    FROM dpkg_version_keys k
    WHERE k.version = ANY(ARRAY(SELECT f.installed_version FROM fixable_rows f UNION SELECT f.available_version FROM fixable_rows f))
  ),
  -- Their versions' keys (dpkg_reaches_fix's comparison: installed < fixed <= available), kept or
  -- computed here when not.
  fixable AS MATERIALIZED (
    SELECT f.machine_id, f.assessment_id, f.release, f.name, f.arch, f.cve_ids, f.package,
           coalesce(decode(kept.keys ->> f.installed_version, 'hex'), dpkg_version_key(f.installed_version)) AS installed_key,
           coalesce(decode(kept.keys ->> f.available_version, 'hex'), dpkg_version_key(f.available_version)) AS available_key
    FROM fixable_rows f CROSS JOIN kept
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
  -- Per (machine, CVE) in one pass over the fixes reached. `first`: per row and CVE the first fix
  -- by source; rows whose advisories name the CVE are left out of rank and origin, not of reach.
  grouped AS MATERIALIZED (
    SELECT r.machine_id, r.assessment_id, r.cve_id,
           max(r.rank) FILTER (WHERE r.first AND NOT r.named) AS rank,
           (array_agg(r.origin ORDER BY r.rank DESC, r.origin COLLATE "C") FILTER (WHERE r.first AND NOT r.named))[1] AS origin,
           bit_or(1 << (r.rank * 2 + (r.origin = 'OSV')::int)) AS reach
    FROM (SELECT r.*, row_number() OVER (PARTITION BY r.machine_id, r.name, r.arch, r.cve_id ORDER BY r.source) = 1 AS first FROM reached r) r
    GROUP BY 1, 2, 3
  ),
  -- The advisories' rank of each CVE a machine's rows name, in one pass over the rows of each
  -- machine with a fix reached, as one object per machine: looked up per result row, it is joined on
  -- the machine alone (the estimates inside this function are of one row each, so a join on the CVE
  -- too could cross the two sets in a nested loop).
  advisories AS MATERIALIZED (
    SELECT a.assessment_id, jsonb_object_agg(a.cve_id, a.rank) AS ranks
    FROM (
      SELECT pu.assessment_id, c.cve_id,
             max(CASE pu.severity::text WHEN 'CRITICAL' THEN 4 WHEN 'IMPORTANT' THEN 3 WHEN 'MODERATE' THEN 2 WHEN 'LOW' THEN 1 ELSE 0 END) AS rank
      FROM pending_updates pu CROSS JOIN LATERAL unnest(pu.cve_ids) AS c(cve_id)
      WHERE pu.assessment_id IN (SELECT g.assessment_id FROM grouped g)
      GROUP BY 1, 2) a
    GROUP BY 1
  )
  SELECT g.cve_id, g.machine_id, g.rank::smallint, g.origin, (a.ranks ->> g.cve_id)::smallint, g.reach::int
  FROM grouped g LEFT JOIN advisories a ON a.assessment_id = g.assessment_id
$$;
--> statement-breakpoint
-- 0048's text, with the keys of the versions given added first. Callers that give none (a removal,
-- a release change, an import's recompute) compute a missing key on the spot, as before. Replaced
-- rather than overloaded: a call with the ids alone (the release trigger, API processes of the
-- version before) takes the new one.
DROP FUNCTION cve_fix_refresh(uuid[]);
--> statement-breakpoint
CREATE FUNCTION cve_fix_refresh(ids uuid[], versions text[] DEFAULT NULL) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- No fix imported and no row to take back: nothing to compute (a fleet without imports pays this
  -- look-up only). The fixes cannot change meanwhile for the ingest (FIX_LOCK, shared); a removal
  -- only takes rows back.
  IF NOT EXISTS (SELECT 1 FROM cve_tracker_fixes) AND NOT EXISTS (SELECT 1 FROM cve_fix_exposures e WHERE e.machine_id = ANY(ids)) THEN
    RETURN;
  END IF;
  PERFORM 1 FROM machines m WHERE m.id = ANY(ids) ORDER BY m.id FOR NO KEY UPDATE;
  -- The keys of the versions given (the ingest's: those of the reports it stores) that
  -- dpkg_version_keys lacks, each computed once for the fleet. A concurrent transaction may add the
  -- same version: both rows stay. Given rather than read from the machines' rows: on a table of a
  -- few thousand machines the planner reads those by a sequential scan.
  IF versions IS NOT NULL THEN
    INSERT INTO dpkg_version_keys (version, key)
    SELECT v.version, dpkg_version_key(v.version)
    FROM (SELECT DISTINCT x.version FROM unnest(versions) AS x(version)) v
    WHERE NOT EXISTS (SELECT 1 FROM dpkg_version_keys k WHERE k.version = v.version);
  END IF;
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
