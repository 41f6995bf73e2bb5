import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_DELAYS_SECONDS,
  disconnectedCutoff,
  eventKey,
  isDelivered,
  nextAttemptAt,
  nonCompliantCutoff,
  retryHorizonSeconds,
  subscriptionsFor,
  webhookDocument,
  webhookInputProblems,
  webhookThresholds,
  webhookUrlProblem,
  type WebhookEventData,
} from '../../src/fleet/webhooks.js';
import { addressPolicy, parseNetworks } from '../../src/webhooks/addressPolicy.js';
import { newWebhookSecret, signatureHeader, signatureOf, verifySignature } from '../../src/webhooks/signature.js';
import { redactSecrets } from '../../src/redact.js';

const run = { id: 'run-1', deploymentId: 'dep-1', deploymentName: 'Patch Tuesday' };

describe('which subscriptions get an event', () => {
  const subscriptions = [
    { id: 'a', events: ['RUN_ENDED', 'RUN_HALTED'] as const, enabled: true },
    { id: 'b', events: ['RUN_ENDED'] as const, enabled: false },
    { id: 'c', events: ['MACHINE_DISCONNECTED', 'RUN_STARTED'] as const, enabled: true },
    { id: 'd', events: ['MACHINE_DISCONNECTED'] as const, enabled: true },
  ];

  it.each([
    ['RUN_ENDED', null, ['a']], // b is disabled
    ['RUN_HALTED', null, ['a']],
    ['RUN_STARTED', null, ['c']],
    ['MACHINE_RUN_FAILED', null, []],
    // A threshold event was made for one subscription's threshold: only that one gets it.
    ['MACHINE_DISCONNECTED', 'd', ['d']],
    ['MACHINE_DISCONNECTED', 'c', ['c']],
  ] as const)('%s (for %s) goes to %j', (type, subscriptionId, expected) => {
    expect(subscriptionsFor({ type, subscriptionId }, subscriptions)).toEqual(expected);
  });
});

describe('event keys: one event per cause', () => {
  it('names the run, the ring, the machine run, or the subscription and episode', () => {
    expect(eventKey({ type: 'RUN_ENDED', run: { ...run, status: 'SUCCEEDED', error: null } })).toBe('RUN_ENDED:run-1');
    expect(eventKey({ type: 'RING_WAITING_FOR_APPROVAL', run, ring: { number: 2, name: 'Broad' } })).toBe('RING_WAITING_FOR_APPROVAL:run-1:2');
    const disconnected: WebhookEventData = { type: 'MACHINE_DISCONNECTED', machine: { id: 'm', name: 'web-1', lastSeenAt: '2026-01-01T00:00:00.000Z' }, thresholdMinutes: 30 };
    expect(eventKey(disconnected, 's1')).not.toBe(eventKey(disconnected, 's2'));
    // The machine came back and left again: a new episode, a new event.
    expect(eventKey(disconnected, 's1')).not.toBe(eventKey({ ...disconnected, machine: { ...disconnected.machine, lastSeenAt: '2026-01-02T00:00:00.000Z' } }, 's1'));
  });
});

describe('thresholds', () => {
  const now = new Date('2026-03-10T12:00:00Z');
  it('asks for machines silent since the threshold and non-compliant since the days', () => {
    expect(disconnectedCutoff(now, 30).toISOString()).toBe('2026-03-10T11:30:00.000Z');
    expect(nonCompliantCutoff(now, 7).toISOString()).toBe('2026-03-03T12:00:00.000Z');
  });

  it('keeps a threshold only for its event, with the default when none is given', () => {
    expect(webhookThresholds(['RUN_ENDED'], { disconnectedMinutes: 10 })).toEqual({ disconnectedMinutes: null, nonCompliantDays: null });
    expect(webhookThresholds(['MACHINE_DISCONNECTED', 'MACHINE_NON_COMPLIANT'], {})).toEqual({ disconnectedMinutes: 30, nonCompliantDays: 7 });
    expect(webhookThresholds(['MACHINE_DISCONNECTED'], { disconnectedMinutes: 120 })).toEqual({ disconnectedMinutes: 120, nonCompliantDays: null });
  });
});

describe('the retry schedule', () => {
  it('keeps trying for more than a day, then gives up', () => {
    expect(retryHorizonSeconds()).toBeGreaterThan(86_400);
    const failedAt = new Date('2026-03-10T12:00:00Z');
    expect(nextAttemptAt(1, failedAt)!.getTime() - failedAt.getTime()).toBe(10_000);
    expect(nextAttemptAt(2, failedAt)!.getTime() - failedAt.getTime()).toBe(30_000);
    expect(nextAttemptAt(DEFAULT_RETRY_DELAYS_SECONDS.length, failedAt)).not.toBeNull();
    expect(nextAttemptAt(DEFAULT_RETRY_DELAYS_SECONDS.length + 1, failedAt)).toBeNull();
  });

  it('spreads retries by at most 10 %', () => {
    const failedAt = new Date(0);
    expect(nextAttemptAt(5, failedAt, DEFAULT_RETRY_DELAYS_SECONDS, 0)!.getTime()).toBe(270_000);
    expect(nextAttemptAt(5, failedAt, DEFAULT_RETRY_DELAYS_SECONDS, 1)!.getTime()).toBe(330_000);
  });

  it('counts only 2xx as delivered (redirects are not followed)', () => {
    expect([200, 204, 299].map(isDelivered)).toEqual([true, true, true]);
    expect([301, 400, 410, 500].map(isDelivered)).toEqual([false, false, false, false]);
  });
});

describe('input rules', () => {
  it.each([
    ['ftp://example.com/hook', 'http:// or https://'],
    ['javascript:alert(1)', 'http:// or https://'],
    ['not a url', 'is not a URL'],
    ['https://user:pw@example.com/hook', 'user name or password'],
    ['https://example.com/hook#x', 'fragment'],
    [`https://example.com/${'a'.repeat(2100)}`, 'at most 2048'],
  ])('refuses %s', (url, message) => {
    expect(webhookUrlProblem(url)).toContain(message);
  });

  it('accepts http and https URLs', () => {
    expect(webhookUrlProblem('https://hooks.example.com/fleetpatch?team=ops')).toBeNull();
    expect(webhookUrlProblem('http://10.0.0.5:8080/hook')).toBeNull();
  });

  it('names the field of each problem', () => {
    const fields = (input: Parameters<typeof webhookInputProblems>[0], mode: 'create' | 'update' = 'create') => webhookInputProblems(input, mode).map((p) => p.field);
    expect(fields({ url: 'https://example.com', events: [] })).toEqual(['events']);
    expect(fields({ url: 'https://example.com', events: ['RUN_ENDED', 'RUN_EXPLODED'] })).toEqual(['events']);
    expect(webhookInputProblems({ url: 'https://example.com', events: ['RUN_EXPLODED'] }, 'create')[0]!.message).toContain('RUN_EXPLODED');
    expect(fields({ url: 'https://example.com', events: ['RUN_ENDED', 'RUN_ENDED'] })).toEqual(['events']);
    expect(fields({ url: 'gopher://x', events: ['RUN_ENDED'] })).toEqual(['url']);
    expect(fields({ url: 'https://example.com', events: ['MACHINE_DISCONNECTED'], disconnectedMinutes: 4 })).toEqual(['disconnectedMinutes']);
    expect(fields({ url: 'https://example.com', events: ['MACHINE_DISCONNECTED'], disconnectedMinutes: 43_201 })).toEqual(['disconnectedMinutes']);
    expect(fields({ url: 'https://example.com', events: ['MACHINE_NON_COMPLIANT'], nonCompliantDays: 0 })).toEqual(['nonCompliantDays']);
    expect(fields({ url: 'https://example.com', events: ['MACHINE_NON_COMPLIANT'], nonCompliantDays: 1.5 })).toEqual(['nonCompliantDays']);
    expect(fields({})).toEqual(['url', 'events']);
    expect(fields({}, 'update')).toEqual([]);
    expect(fields({ events: [] }, 'update')).toEqual(['events']);
    expect(fields({ url: 'https://example.com', events: ['RUN_ENDED', 'MACHINE_DISCONNECTED'], disconnectedMinutes: 5, nonCompliantDays: 365 })).toEqual([]);
  });
});

describe('the document', () => {
  it('carries the event id, type, time and data, without the type twice', () => {
    const doc = webhookDocument({ id: 'e1', occurredAt: new Date('2026-03-10T12:00:00Z'), data: { type: 'RUN_HALTED', run, ring: { number: 1, name: 'Canary' }, reason: 'too many failures' } });
    expect(doc).toEqual({ id: 'e1', type: 'RUN_HALTED', occurredAt: '2026-03-10T12:00:00.000Z', data: { run, ring: { number: 1, name: 'Canary' }, reason: 'too many failures' } });
  });
});

describe('signatures', () => {
  const secret = 'fpw_' + 'k'.repeat(43);
  const body = '{"id":"e1","type":"RUN_ENDED"}';

  it('is HMAC-SHA256 over "<timestamp>.<body>" (a known vector)', () => {
    // echo -n '1700000000.{"id":"e1","type":"RUN_ENDED"}' | openssl dgst -sha256 -hmac "$secret"
    expect(signatureOf(secret, 1_700_000_000, body)).toBe('3b9478b1d08e300be209a797864a04830e4da61b66cb23ad10dc8af7771dce17');
    expect(signatureHeader(secret, 1_700_000_000, body)).toBe(`t=1700000000,v1=${signatureOf(secret, 1_700_000_000, body)}`);
  });

  it('verifies as a receiver would: the right secret and body, within the tolerance', () => {
    const header = signatureHeader(secret, 1_700_000_000, body);
    expect(verifySignature(secret, header, body, 1_700_000_100)).toBeNull();
    expect(verifySignature(secret, header, body.replace('ENDED', 'STARTED'), 1_700_000_100)).toBe('signature does not match');
    expect(verifySignature('fpw_other', header, body, 1_700_000_100)).toBe('signature does not match');
    expect(verifySignature(secret, header, body, 1_700_000_400)).toBe('timestamp outside the tolerance');
    expect(verifySignature(secret, undefined, body, 1_700_000_000)).toBe('no signature header');
    expect(verifySignature(secret, 'v1=abc', body, 1_700_000_000)).toBe('no timestamp in the signature header');
  });

  it('makes secrets that the logs and the audit log redact', () => {
    const made = newWebhookSecret();
    expect(made).toMatch(/^fpw_[A-Za-z0-9_-]{43}$/);
    expect(redactSecrets({ note: `the secret is ${made}` })).toEqual({ note: 'the secret is [REDACTED]' });
  });
});

describe('the address policy (SSRF)', () => {
  const closed = addressPolicy([]);

  it.each(['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1'])('refuses %s by default', (address) => {
    expect(closed.problem(address)).toContain('not a public address');
  });

  it.each(['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111'])('lets public %s through', (address) => {
    expect(closed.problem(address)).toBeNull();
  });

  it('lets through the networks an operator allows, and only those', () => {
    const open = addressPolicy(parseNetworks('127.0.0.1/32, 10.0.0.0/8, fd00::/8'));
    expect(open.problem('127.0.0.1')).toBeNull();
    expect(open.problem('10.200.0.1')).toBeNull();
    expect(open.problem('fd00::5')).toBeNull();
    expect(open.problem('127.0.0.2')).toContain('not a public address');
    expect(open.problem('192.168.0.1')).toContain('not a public address');
  });

  it('says which item of the setting is wrong', () => {
    expect(() => parseNetworks('10.0.0.0/8, example.com')).toThrow('"example.com" is not an IP address');
    expect(() => parseNetworks('10.0.0.0/33')).toThrow('prefix length outside 0 to 32');
  });
});
