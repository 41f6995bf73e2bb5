import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/api/rateLimit.js';

describe('rate limiter', () => {
  it('lets a burst through, then one request per interval, per key, and says when to come back', () => {
    let now = 0;
    const limiter = new RateLimiter(60, () => now); // one a second, bursts of 10
    for (let i = 0; i < 10; i++) expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(1);
    expect(limiter.take('b')).toBe(0);
    now += 1000;
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(1);
    now += 60_000;
    for (let i = 0; i < 10; i++) expect(limiter.take('a')).toBe(0);
  });

  it('is off at 0', () => {
    const limiter = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.take('a')).toBe(0);
  });

  it('tells a slow rate how many seconds to wait', () => {
    const now = 0;
    const limiter = new RateLimiter(6, () => now); // one each ten seconds
    for (let i = 0; i < 10; i++) limiter.take('a');
    expect(limiter.take('a')).toBe(10);
  });
});
