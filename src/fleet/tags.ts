/** Tags group machines for targeting ("web", "env:prod", "rack=12"). */
const TAG = /^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,63}$/;
export const MAX_TAGS = 50;

/** The first problem with a list of tags, or null. Duplicates are not an error: they are dropped. */
export function tagProblem(tags: readonly string[]): string | null {
  if (tags.length > MAX_TAGS) return `at most ${MAX_TAGS} tags; got ${tags.length}`;
  const bad = tags.find((t) => !TAG.test(t));
  if (bad !== undefined) {
    return `"${bad.slice(0, 80)}" is not a tag: 1 to 64 letters, digits or _ . : = / -, starting with a letter or digit`;
  }
  return null;
}

export function normaliseTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort();
}
