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
