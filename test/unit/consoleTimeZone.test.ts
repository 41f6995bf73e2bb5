import { describe, expect, it } from 'vitest';
import { wallTimeToIso } from '../../web/src/zone.js';

/** The deployment form reads the start an operator types as wall-clock time in the deployment's time zone. */
describe('wall-clock time in a time zone, as the deployment form sends it', () => {
  it('reads the time in the given zone, winter and summer', () => {
    expect(wallTimeToIso('2026-01-15T02:00', 'Europe/Paris')).toBe('2026-01-15T01:00:00.000Z');
    expect(wallTimeToIso('2026-07-15T02:00', 'Europe/Paris')).toBe('2026-07-15T00:00:00.000Z');
    expect(wallTimeToIso('2026-07-15T22:30', 'America/New_York')).toBe('2026-07-16T02:30:00.000Z');
    expect(wallTimeToIso('2026-07-15T22:30', 'UTC')).toBe('2026-07-15T22:30:00.000Z');
  });

  it('lands on the right side of a daylight saving change', () => {
    // Europe/Paris goes from +01:00 to +02:00 at 02:00 on 29 March 2026: 03:30 that day is summer time.
    expect(wallTimeToIso('2026-03-29T03:30', 'Europe/Paris')).toBe('2026-03-29T01:30:00.000Z');
    expect(wallTimeToIso('2026-03-29T01:30', 'Europe/Paris')).toBe('2026-03-29T00:30:00.000Z');
  });

  it('answers null for a zone that does not exist, so the API can name the field', () => {
    expect(wallTimeToIso('2026-07-15T02:00', 'Mars/Olympus')).toBeNull();
    expect(wallTimeToIso('not a time', 'UTC')).toBeNull();
  });
});
