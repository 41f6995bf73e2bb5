/**
 * Machine names as operators read them. A machine is named by the hostname its agent reports, and
 * operators pick machines by that name in lists and deployment forms: a name must look like what
 * it is, and two machines with one name must be told apart.
 */

/**
 * Characters a hostname may not hold, by name where one is known: control characters (C0, DEL, C1:
 * they move the cursor or end the text in terminals and logs) and Unicode format characters
 * (bidirectional controls such as RIGHT-TO-LEFT OVERRIDE reorder what is shown, so `web-01` and a
 * name that only displays as `web-01` could sit side by side; zero-width characters hide inside a
 * name the same way).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}]/u;

const CHARACTER_NAMES: Record<number, string> = {
  0x00: 'NUL',
  0x09: 'CHARACTER TABULATION',
  0x0a: 'LINE FEED',
  0x0d: 'CARRIAGE RETURN',
  0x1b: 'ESCAPE',
  0x7f: 'DELETE',
  0xad: 'SOFT HYPHEN',
  0x061c: 'ARABIC LETTER MARK',
  0x200b: 'ZERO WIDTH SPACE',
  0x200c: 'ZERO WIDTH NON-JOINER',
  0x200d: 'ZERO WIDTH JOINER',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x2060: 'WORD JOINER',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
  0xfeff: 'ZERO WIDTH NO-BREAK SPACE',
};

/** `U+202E (RIGHT-TO-LEFT OVERRIDE)` */
function describeCharacter(codePoint: number): string {
  const hex = `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`;
  const name = CHARACTER_NAMES[codePoint];
  return name ? `${hex} (${name})` : hex;
}

/** Why a reported hostname is refused, naming the character and where it is; null when it is fine. */
export function hostnameProblem(hostname: string): string | null {
  if (hostname.trim() === '') return 'the hostname is empty.';
  const characters = [...hostname];
  const at = characters.findIndex((c) => INVISIBLE.test(c));
  if (at < 0) return null;
  const codePoint = characters[at]!.codePointAt(0)!;
  const kind = /\p{Cc}/u.test(characters[at]!) ? 'a control character' : 'an invisible formatting character (bidirectional control or zero-width)';
  return `the hostname holds ${describeCharacter(codePoint)} at character ${at + 1}, ${kind}; a hostname may hold neither control nor bidirectional or zero-width formatting characters. Give the machine a plain hostname.`;
}

