/**
 * Secrets never leave the process: not in logs, not in the audit log. A value is a secret when its
 * key says so (authorization, token, secret, credential, password, enrollmentKey) or when it looks
 * like one of our own secrets (fp_, fpe_, fpm_, fps_, fpw_ followed by 43 base64url characters), wherever
 * it is.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY = /^(authorization|token|secret|credential|password|enrollmentkey|cookie)$/i;
/**
 * Not after a letter or digit (`xfp_...` is another word), but after anything else, `_` included
 * (`KEY_fp_...`). Nothing is asked of what follows: a `\b` there missed every secret ending in `-`
 * (a word boundary needs a word character on one side), and a secret run into other characters
 * is still a secret: at worst the first 43 characters of a longer run are masked.
 */
const SECRET_VALUE = /(?<![A-Za-z0-9])fp[emsw]?_[A-Za-z0-9_-]{43}/g;

export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.replace(SECRET_VALUE, REDACTED);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 20) return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  // Errors, dates, buffers and other instances are left whole (the logger serializes errors itself).
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEY.test(key) && v !== null && v !== undefined ? REDACTED : redactSecrets(v, depth + 1);
  return out;
}
