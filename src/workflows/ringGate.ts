import { condition, sleep } from '@temporalio/workflow';
import type { RingStep } from '../activities/deployments.js';
import { gateDecision, type GateVerdict, type RingGate } from '../fleet/rollout.js';

/**
 * A ring's gate, for both shapes of a ringed run: decide (src/fleet/rollout.ts), record each step,
 * soak, or wait for an operator's word, until the ring is promoted (null) or rejected (the reason).
 * The counts are the ring's as it ended.
 */
export async function passRingGate(
  recordRingStep: (input: { runId: string; ring: number; step: RingStep }) => Promise<void>,
  input: { runId: string; ring: number; ringName: string; gate: RingGate; counts: { total: number; failed: number }; verdicts: ReadonlyMap<number, GateVerdict>; stepHalts: readonly string[] },
): Promise<string | null> {
  const { runId, ring, verdicts } = input;
  let soaked = false;
  for (;;) {
    const verdict = verdicts.get(ring) ?? null;
    const decision = gateDecision({ ringName: input.ringName, gate: input.gate, total: input.counts.total, failed: input.counts.failed, soaked, verdict, stepHalts: input.stepHalts });
    if (decision.kind === 'PROMOTE') {
      const step = verdict?.kind === 'RESUMED' ? { kind: 'RESUMED' as const, by: verdict.by } : { kind: 'PROMOTED' as const, approvedBy: verdict?.kind === 'APPROVED' ? verdict.by : null };
      await recordRingStep({ runId, ring, step });
      return null;
    }
    if (decision.kind === 'REJECT') return decision.reason;
    if (decision.kind === 'SOAK') {
      await recordRingStep({ runId, ring, step: { kind: 'SOAKING', seconds: decision.seconds } });
      await sleep(decision.seconds * 1000);
      soaked = true;
      continue;
    }
    await recordRingStep({ runId, ring, step: decision.kind === 'HALT' ? { kind: 'HALTED', reason: decision.reason } : { kind: 'WAITING_FOR_APPROVAL' } });
    // Waits for an operator's word on this ring (a signal): no timer, no polling.
    await condition(() => (verdicts.get(ring) ?? null) !== verdict);
  }
}
