-- dpkg's version order in SQL (hand-written; carry it if this migration is renumbered), so that
-- "an imported fix reaches this pending update" (installed < fixed <= available) can be decided
-- where the rows are, instead of fetching them to compare in TypeScript. The twin of
-- compareDebianVersions (src/fleet/cves.ts, dpkg's lib/dpkg/version.c), held to it by
-- test/integration/dpkgVersionOrder.test.ts: comparing two keys as bytea orders the versions as
-- that function does.
--
-- The key of one part (upstream or revision): the part is read as pairs, a run of non-digits
-- (possibly empty) then a run of digits (possibly empty), as dpkg's loop reads them. A non-digit
-- run is its characters by dpkg's weight, then chr(2), dpkg's weight of the part's end (or of a
-- digit met instead): '~' is chr(1), below the end; letters are themselves; any other UTF-16 code
-- unit u (what the TypeScript compares) is chr(65536 + u), above every letter. A digit run is its
-- digits without leading zeros, after its length in two characters (chr(65536 + high 16 bits),
-- chr(65536 + low 16 bits)), so that the longer number sorts higher. The part ends with chr(2):
-- where one part ends and the other goes on with a non-digit, dpkg compares that non-digit with
-- the end's weight, which is what that last chr(2) is compared with. A part is never a prefix of
-- another's key, so the upstream's key ends where the revision's starts. Code points keep their
-- order in UTF-8, so the text is converted to bytes and compared as bytea.
CREATE FUNCTION dpkg_version_part_key(part text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  n int := length(part);
  i int := 1;
  j int;
  cp int;
  digits text;
  k text := '';
BEGIN
  LOOP
    WHILE i <= n LOOP
      cp := ascii(substr(part, i, 1));
      EXIT WHEN cp BETWEEN 48 AND 57;
      IF cp = 126 THEN
        k := k || chr(1);
      ELSIF cp BETWEEN 65 AND 90 OR cp BETWEEN 97 AND 122 THEN
        k := k || chr(cp);
      ELSIF cp > 65535 THEN
        -- Beyond the BMP: JavaScript compares the two UTF-16 surrogates one at a time.
        k := k || chr(65536 + 55296 + ((cp - 65536) >> 10)) || chr(65536 + 56320 + ((cp - 65536) & 1023));
      ELSE
        k := k || chr(65536 + cp);
      END IF;
      i := i + 1;
    END LOOP;
    k := k || chr(2);
    j := i;
    WHILE i <= n AND ascii(substr(part, i, 1)) BETWEEN 48 AND 57 LOOP
      i := i + 1;
    END LOOP;
    digits := ltrim(substr(part, j, i - j), '0');
    k := k || chr(65536 + (length(digits) >> 16)) || chr(65536 + (length(digits) & 65535)) || digits;
    EXIT WHEN i > n;
  END LOOP;
  RETURN k || chr(2);
END
$$;
--> statement-breakpoint
-- The key of a whole version: trimmed of what JavaScript's trim() removes; the epoch before the
-- first ':' (0 unless it is all digits: dpkg refuses any other), compared as a number; the
-- revision after the last '-' of the rest, empty when there is none.
CREATE FUNCTION dpkg_version_key(version text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  v text := btrim(version, E' \t\n\r\u000b\u000c\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff');
  colon int := strpos(v, ':');
  epoch text := '';
  rest text := v;
  dash int;
BEGIN
  IF colon > 0 THEN
    epoch := left(v, colon - 1);
    rest := substr(v, colon + 1);
    epoch := CASE WHEN epoch ~ '^[0-9]+$' THEN ltrim(epoch, '0') ELSE '' END;
  END IF;
  dash := strpos(reverse(rest), '-');
  RETURN convert_to(
    chr(65536 + (length(epoch) >> 16)) || chr(65536 + (length(epoch) & 65535)) || epoch
      || dpkg_version_part_key(CASE WHEN dash > 0 THEN left(rest, length(rest) - dash) ELSE rest END)
      || dpkg_version_part_key(CASE WHEN dash > 0 THEN right(rest, dash - 1) ELSE '' END),
    'UTF8');
END
$$;
--> statement-breakpoint
-- Negative, zero or positive as `dpkg --compare-versions a lt|eq|gt b`.
CREATE FUNCTION dpkg_version_cmp(a text, b text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN dpkg_version_key(a) < dpkg_version_key(b) THEN -1 WHEN dpkg_version_key(a) > dpkg_version_key(b) THEN 1 ELSE 0 END;
--> statement-breakpoint
-- Whether a pending update reaches an imported fix: installed below the fixed version, available
-- at or above it (reachesFix in src/fleet/cves.ts). False when nothing is installed.
CREATE FUNCTION dpkg_reaches_fix(installed text, fixed text, available text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN installed IS NOT NULL AND dpkg_version_key(installed) < dpkg_version_key(fixed) AND dpkg_version_key(fixed) <= dpkg_version_key(available);
