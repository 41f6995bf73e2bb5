/** Whether an enrollment key may still enroll a machine, and if not, why, in words for the operator. */
export interface EnrollmentKeyState {
  revokedAt: Date | null;
  expiresAt: Date | null;
  maxUses: number | null;
  useCount: number;
}

export function enrollmentRefusal(key: EnrollmentKeyState | undefined, now: Date): string | null {
  if (!key) return 'This enrollment key is not known to the server. Ask an admin for a valid key.';
  if (key.revokedAt) return `This enrollment key was revoked on ${key.revokedAt.toISOString()}. Ask an admin for a new key.`;
  if (key.expiresAt && key.expiresAt <= now) return `This enrollment key expired on ${key.expiresAt.toISOString()}. Ask an admin for a new key.`;
  if (key.maxUses !== null && key.useCount >= key.maxUses) {
    return `This enrollment key has been used for all of its ${key.maxUses} machine(s). Ask an admin for a new key.`;
  }
  return null;
}

/**
 * How long after an enrollment the same request (its agent's enrollment request id) is answered
 * again. An agent whose answer was lost retries within seconds to minutes; past this, or once the
 * machine has reported an assessment (its agent holds the credential and uses it), the request is
 * spent: answering it again would hand a new credential, and the machine, to whoever holds the key
 * and the id, and cut off the real agent.
 */
export const ENROLLMENT_RETRY_MINUTES = 15;

/**
 * Why a retried enrollment is not answered for its earlier machine, in words for the operator; null: answer it again.
 *
 * `lastSeenAt`: when the answer that gave the machine its credential arrived (or a check-in with it
 * since). A copy of the request that arrived before that is one its agent gave up on (it sends the
 * next copy only after giving up on the last): answered late, behind a busy server, it would replace
 * the credential the agent holds now with one nobody reads, and the agent would be refused from
 * then on (seen with 30,000 agents joining at once).
 */
export function retriedEnrollmentRefusal(earlier: { enrolledAt: Date; removedAt: Date | null; latestAssessmentId: string | null; lastSeenAt: Date | null }, now: Date): string | null {
  if (earlier.removedAt) {
    return `This machine was enrolled and then removed from the fleet on ${earlier.removedAt.toISOString()}. Enroll it again from the start (the agent with an empty state directory).`;
  }
  const spent = 'Enroll it again from the start (the agent with an empty state directory) if its credential was lost.';
  if (earlier.latestAssessmentId !== null) return `This enrollment request already enrolled a machine, which has reported since. ${spent}`;
  if (earlier.lastSeenAt && earlier.lastSeenAt > now) {
    return `This enrollment request was answered at ${earlier.lastSeenAt.toISOString()} for a copy of it sent later than this one (which arrived at ${now.toISOString()}): the agent holds that answer's credential.`;
  }
  if (now.getTime() - earlier.enrolledAt.getTime() > ENROLLMENT_RETRY_MINUTES * 60_000) {
    return `This enrollment request already enrolled a machine on ${earlier.enrolledAt.toISOString()}, more than ${ENROLLMENT_RETRY_MINUTES} minutes ago. ${spent}`;
  }
  return null;
}

/**
 * Windows client editions (Windows 10, 11) are refused: the seed supports Windows Server only. The
 * agent sends the edition's product name as osName ("Windows Server 2022 Datacenter", "Windows 11
 * Pro"); Azure Stack HCI is a server operating system under another name.
 */
export function editionRefusal(facts: { osType: 'LINUX' | 'WINDOWS'; osName: string }): string | null {
  if (facts.osType !== 'WINDOWS') return null;
  if (/\bWindows Server\b|\bAzure Stack HCI\b/i.test(facts.osName)) return null;
  return `${facts.osName} is a Windows client edition, and fleetpatch manages Windows Server only: client operating systems are not supported. Enroll a Windows Server machine instead.`;
}

/**
 * A key nobody bounded is what a leaked key is worth to whoever holds it: one from before these
 * defaults enrolled 302 fake machines in 51 s. So a new key expires and counts its uses unless an
 * admin says, explicitly, that it must not (`neverExpires`, `unlimitedUses`). A day covers
 * onboarding a batch of machines; ten machines covers a batch without a number of its own.
 */
export const DEFAULT_KEY_LIFETIME_HOURS = 24;
export const DEFAULT_KEY_MAX_USES = 10;
export const MAX_KEY_USES = 1_000_000;

export interface EnrollmentKeyLimitsInput {
  expiresAt?: Date | null;
  neverExpires?: boolean | null;
  maxUses?: number | null;
  unlimitedUses?: boolean | null;
}

export type EnrollmentKeyLimits = { expiresAt: Date | null; maxUses: number | null } | { field: 'expiresAt' | 'maxUses'; problem: string };

/** When a new key expires and how many machines it may enroll, from what the admin asked for (or why that is refused). */
export function enrollmentKeyLimits(input: EnrollmentKeyLimitsInput, now: Date): EnrollmentKeyLimits {
  const expiresAt = input.expiresAt ?? null;
  const maxUses = input.maxUses ?? null;
  if (input.neverExpires && expiresAt) return { field: 'expiresAt', problem: 'Give expiresAt or neverExpires: true, not both.' };
  if (expiresAt && expiresAt <= now) return { field: 'expiresAt', problem: `expiresAt must be in the future; got ${expiresAt.toISOString()}.` };
  if (input.unlimitedUses && maxUses !== null) return { field: 'maxUses', problem: 'Give maxUses or unlimitedUses: true, not both.' };
  if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > MAX_KEY_USES)) {
    return { field: 'maxUses', problem: `maxUses must be between 1 and 1,000,000 (or unlimitedUses: true for no limit); got ${maxUses}.` };
  }
  return {
    expiresAt: input.neverExpires ? null : (expiresAt ?? new Date(now.getTime() + DEFAULT_KEY_LIFETIME_HOURS * 3_600_000)),
    maxUses: input.unlimitedUses ? null : (maxUses ?? DEFAULT_KEY_MAX_USES),
  };
}
