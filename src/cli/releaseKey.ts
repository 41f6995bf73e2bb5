import { ensureReleaseKey, rotateReleaseKey, type ReleaseSigningKey } from '../release/signingKey.js';
import { loadConfig } from '../config.js';

/** `fleetpatch release-key [--rotate] [--json]` (its options and help are in program.ts). */
export async function releaseKeyCommand(options: { rotate?: boolean; json?: boolean }): Promise<void> {
  const file = loadConfig().releaseKeyFile;
  let key: ReleaseSigningKey;
  let said: string;
  if (options.rotate) {
    const rotated = rotateReleaseKey(file);
    key = rotated.key;
    said = `rotated: ${rotated.previous.fingerprint} endorsed ${key.fingerprint} and is gone from ${file}. Copy the file to every API replica and restart them; agents follow at their next check-in.`;
  } else {
    const ensured = ensureReleaseKey(file);
    key = ensured.key;
    said = ensured.created ? `made a new key in ${file} (mode 0600): keep a copy somewhere safe; every API replica needs this same file.` : `in ${file}`;
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ file, fingerprint: key.fingerprint, publicKey: key.publicKey, createdAt: key.createdAt, rotations: key.endorsements.length }, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    [
      `release key ${key.fingerprint}`,
      `  public key (base64 SPKI): ${key.publicKey}`,
      `  made: ${key.createdAt}; rotations since the first key: ${key.endorsements.length}`,
      `  ${said}`,
      '',
    ].join('\n'),
  );
}
