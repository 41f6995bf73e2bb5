-- A report's imported-fix exposures read each machine's rows once for the advisories' rank of the
-- CVEs its fixes reach, not once per (machine, CVE) exposure row: with every row reaching two fixes
-- (bench/ingest.ts --fixes 2) that was about a hundred reads of the machine's fifty rows per report,
-- most of the ingest's cost once fixes are imported (BENCHMARKS.md, "Imported fixes' exposures
-- maintained"). The same rows, the same values: the function's result is what 0048's text answers.
CREATE OR REPLACE FUNCTION cve_fix_exposures_of(ids uuid[])
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
