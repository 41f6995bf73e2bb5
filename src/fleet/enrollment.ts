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
 * Windows client editions (Windows 10, 11) are refused: the seed supports Windows Server only. The
 * agent sends the edition's product name as osName ("Windows Server 2022 Datacenter", "Windows 11
 * Pro"); Azure Stack HCI is a server operating system under another name.
 */
export function editionRefusal(facts: { osType: 'LINUX' | 'WINDOWS'; osName: string }): string | null {
  if (facts.osType !== 'WINDOWS') return null;
  if (/\bWindows Server\b|\bAzure Stack HCI\b/i.test(facts.osName)) return null;
  return `${facts.osName} is a Windows client edition, and fleetpatch manages Windows Server only: client operating systems are not supported. Enroll a Windows Server machine instead.`;
}
