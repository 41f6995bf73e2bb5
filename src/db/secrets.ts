import { createHash, randomBytes } from 'node:crypto';

/**
 * Secrets (API tokens, enrollment keys, machine credentials, console sessions) are 256 random bits
 * with a prefix that says what they are (fp_ token, fpe_ enrollment key, fpm_ machine, fps_ console
 * session), so that people and secret scanners can tell them apart. Only their SHA-256 is stored:
 * they are random, so a slow password hash adds nothing.
 */
export function newSecret(prefix: 'fp_' | 'fpe_' | 'fpm_' | 'fps_'): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
