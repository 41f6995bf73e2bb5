import { describe, expect, it } from 'vitest';
import { MachineCredentialCache, trustAfterCheckInMs } from '../../src/api/agent/credentialCache.js';
import type { FleetPubSub } from '../../src/events/pubsub.js';

describe('the machine credential cache', () => {
  it('asks the database once per credential within the trust time, and again after it', async () => {
    let now = 0;
    const cache = new MachineCredentialCache(60_000, () => now);
    let lookups = 0;
    const find = async () => {
      lookups++;
      return 'machine-1';
    };
    expect(await cache.resolve('hash-1', find)).toBe('machine-1');
    now = 59_999;
    expect(await cache.resolve('hash-1', find)).toBe('machine-1');
    expect(lookups).toBe(1);
    now = 60_000;
    expect(await cache.resolve('hash-1', find)).toBe('machine-1');
    expect(lookups).toBe(2);
  });

  it('never caches an unknown credential', async () => {
    const cache = new MachineCredentialCache();
    let lookups = 0;
    const unknown = async () => {
      lookups++;
      return undefined;
    };
    expect(await cache.resolve('bad', unknown)).toBeUndefined();
    expect(await cache.resolve('bad', unknown)).toBeUndefined();
    expect(lookups).toBe(2);
  });

  it('forgets a changed machine, and does not keep an answer read while the machine was being removed', async () => {
    const cache = new MachineCredentialCache();
    await cache.resolve('hash-1', async () => 'machine-1');
    cache.forgetMachine('machine-1');
    expect(cache.machineOf('hash-1')).toBeUndefined();

    // The look-up read the row before the removal committed; the removal's event came in meanwhile.
    let finish: (id: string) => void = () => undefined;
    const racing = cache.resolve('hash-2', () => new Promise<string>((resolve) => (finish = resolve)));
    cache.forgetMachine('machine-2');
    finish('machine-2');
    expect(await racing).toBe('machine-2');
    expect(cache.machineOf('hash-2')).toBeUndefined();
  });

  it('forgets a machine on its removal, wherever it was removed, and keeps it through other changes (a report, new facts)', async () => {
    const cache = new MachineCredentialCache();
    let observer: Parameters<FleetPubSub['observe']>[0] | undefined;
    cache.follow({ observe: (o: typeof observer) => ((observer = o), () => undefined) } as unknown as FleetPubSub);
    await cache.resolve('hash-1', async () => 'machine-1');
    await cache.resolve('hash-2', async () => 'machine-2');
    observer!.published?.('machineChanged', { machineId: 'machine-1' });
    observer!.delivered?.('machineChanged', { machineId: 'machine-2' });
    expect([cache.machineOf('hash-1'), cache.machineOf('hash-2')]).toEqual(['machine-1', 'machine-2']);
    observer!.published?.('machineChanged', { machineId: 'machine-1', removed: true });
    observer!.delivered?.('machineChanged', { machineId: 'machine-2', removed: true });
    expect([cache.machineOf('hash-1'), cache.machineOf('hash-2')]).toEqual([undefined, undefined]);
  });

  it('knows a credential it has just issued without asking', async () => {
    const cache = new MachineCredentialCache();
    cache.remember('hash-new', 'machine-new');
    await new Promise((r) => setImmediate(r));
    expect(await cache.resolve('hash-new', () => Promise.reject(new Error('looked up')))).toBe('machine-new');
  });

  it('forgets everything at once (the LISTEN was re-established: events may have been lost)', async () => {
    const cache = new MachineCredentialCache();
    await cache.resolve('hash-1', async () => 'machine-1');
    await cache.resolve('hash-2', async () => 'machine-2');
    cache.forgetAll();
    expect(cache.size).toBe(0);
  });

  it('holds one credential per machine: a new one confirmed drops the one before, however its replacement was missed', async () => {
    const cache = new MachineCredentialCache();
    await cache.resolve('hash-old', async () => 'machine-1');
    cache.confirm('hash-new', 'machine-1', cache.generation);
    expect([cache.machineOf('hash-old'), cache.machineOf('hash-new')]).toEqual([undefined, 'machine-1']);
    await cache.resolve('hash-newer', async () => 'machine-1');
    expect([cache.machineOf('hash-new'), cache.machineOf('hash-newer')]).toEqual([undefined, 'machine-1']);
  });

  it('refuses a credential the database no longer holds from then on, and keeps no confirmation read while a machine was forgotten', async () => {
    const cache = new MachineCredentialCache();
    await cache.resolve('hash-1', async () => 'machine-1');
    cache.refuse('hash-1');
    expect(cache.machineOf('hash-1')).toBeUndefined();
    cache.refuse('hash-unknown');

    const before = cache.generation;
    cache.forgetMachine('machine-2');
    cache.confirm('hash-2', 'machine-2', before);
    expect(cache.machineOf('hash-2')).toBeUndefined();
  });
});

describe('the trust a check-in gives', () => {
  it('lasts one and a half check-in intervals, and never less than 90 s', () => {
    expect(trustAfterCheckInMs(60)).toBe(90_000);
    expect(trustAfterCheckInMs(10)).toBe(90_000);
    expect(trustAfterCheckInMs(300)).toBe(450_000);
  });
});
