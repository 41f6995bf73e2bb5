import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { REDACTED_PATHS } from '../../src/logger.js';
import { REDACTED, redactSecrets } from '../../src/redact.js';

const token = `fp_${'A'.repeat(43)}`;
const machine = `fpm_${'b'.repeat(43)}`;
const key = `fpe_${'c'.repeat(40)}-_9`;

describe('secret redaction', () => {
  it('masks secrets by key and by their look, anywhere in a value, and keeps the rest', () => {
    expect(
      redactSecrets({
        name: 'ci',
        input: { enrollmentKey: 'anything', note: `pasted ${token} here`, ids: ['x', machine] },
        headers: { authorization: `Bearer ${token}`, accept: 'json' },
        secret: null,
      }),
    ).toEqual({
      name: 'ci',
      input: { enrollmentKey: REDACTED, note: `pasted ${REDACTED} here`, ids: ['x', REDACTED] },
      headers: { authorization: REDACTED, accept: 'json' },
      secret: null,
    });
    expect(redactSecrets(`key ${key}`)).toBe(`key ${REDACTED}`);
  });

  it('masks a secret whatever its last character, at the end of a text or before any separator', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const missed: string[] = [];
    for (const prefix of ['fp_', 'fpe_', 'fpm_', 'fps_']) {
      for (const last of alphabet) {
        const secret = `${prefix}${'x7-_Q'.repeat(9).slice(0, 42)}${last}`;
        for (const text of [secret, `${secret} `, `"${secret}"`, `${secret}.`, `token=${secret}&next=1`, `${secret}\n`, `Bearer ${secret}`, `KEY_${secret}`]) {
          const redacted = redactSecrets({ details: { note: text } }) as { details: { note: string } };
          if (redacted.details.note.includes(secret) || !redacted.details.note.includes(REDACTED)) missed.push(JSON.stringify(text));
        }
      }
    }
    expect(missed).toEqual([]);
  });

  it('leaves text that only starts like a secret alone', () => {
    for (const text of ['fp_short', `xfp_${'a'.repeat(43)}`, `fpx_${'a'.repeat(43)}`, `fp_${'a'.repeat(42)}`]) expect(redactSecrets(text)).toBe(text);
  });

  it('leaves errors whole for the logger to serialize', () => {
    const error = new Error('boom');
    expect((redactSecrets({ err: error }) as { err: unknown }).err).toBe(error);
  });

  it('has pino paths that parse', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const logger = pino({ redact: { paths: REDACTED_PATHS, censor: REDACTED } }, sink);
    logger.info({ req: { headers: { authorization: `Bearer ${token}` } }, credential: machine }, 'x');
    expect(lines.join('')).not.toContain(token);
    expect(lines.join('')).not.toContain(machine);
  });
});
