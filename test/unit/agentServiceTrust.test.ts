import { describe, expect, it } from 'vitest';
import { AgentService } from '../../src/api/agent/agent.service.js';
import type { ApiServices } from '../../src/api/context.js';

/** Just what the constructor touches: the interval, and a pubsub to follow. */
function servicesAt(checkInSeconds: number): ApiServices {
  return {
    fleet: { agentTimings: { checkInSeconds } },
    pubsub: { observe: () => () => undefined },
    database: {},
    logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  } as unknown as ApiServices;
}

describe("an API process's trust in what a check-in told it", () => {
  it('lasts until the next check-in at the configured interval: the credential and the empty queue alike', () => {
    // With a fixed 90 s, an agent checking in every 300 s paid three statements a poll after it.
    const at300 = new AgentService(servicesAt(300));
    expect(at300.credentials.trustMs).toBe(450_000);
    expect(at300.polls.quietTrustMs).toBe(450_000);
    const at60 = new AgentService(servicesAt(60));
    expect(at60.credentials.trustMs).toBe(90_000);
    expect(at60.polls.quietTrustMs).toBe(90_000);
  });
});
