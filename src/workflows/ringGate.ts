import { condition, setHandler, sleep } from '@temporalio/workflow';
import type { RingStep } from '../activities/deployments.js';
import { gateDecision, type GateVerdict, type RingGate } from '../fleet/rollout.js';
import { approveRingSignal, rejectRingSignal, resumeRunSignal } from './config.js';

/**
 * The operators' word on each ring's gate, as their signals arrive (from `carried` when the run
 * continued as new). A rejection is final: a later approval or resume of the same ring does not undo it.
 */
export function ringVerdicts(carried: Iterable<[number, NonNullable<GateVerdict>]> = []): Map<number, NonNullable<GateVerdict>> {
  const verdicts = new Map<number, NonNullable<GateVerdict>>(carried);
  setHandler(approveRingSignal, ({ ring, by }) => void (verdicts.get(ring)?.kind !== 'REJECTED' && verdicts.set(ring, { kind: 'APPROVED', by })));
  setHandler(resumeRunSignal, ({ ring, by }) => void (verdicts.get(ring)?.kind !== 'REJECTED' && verdicts.set(ring, { kind: 'RESUMED', by })));
  setHandler(rejectRingSignal, ({ ring, by, reason }) => void verdicts.set(ring, { kind: 'REJECTED', by, reason }));
  return verdicts;
}

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
