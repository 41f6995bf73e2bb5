import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleep, untilWoken } from '../../src/agent/sleep.js';

describe("the agent's waits", () => {
  it('leave no listener on the long-lived signal, however many times they run', async () => {
    const controller = new AbortController();
    for (let i = 0; i < 200; i += 1) {
      await sleep(0, controller.signal);
      await untilWoken(controller.signal, (wake) => setTimeout(wake, 0));
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('end at once when the agent stops', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waits = Promise.all([sleep(60_000, controller.signal), untilWoken(controller.signal, () => undefined)]);
    controller.abort();
    await waits;
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
