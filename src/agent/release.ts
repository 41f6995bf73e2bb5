/**
 * What an agent release's signature covers and how an agent checks it, shared by the server (which
 * signs) and the agent (which verifies). Ed25519 over a short statement that names the version, the
 * platform, the size and the sha256 of the executable: the agent hashes what it downloaded and
 * verifies the statement it rebuilt from that hash against the release key it pinned at enrollment.
 * A key rotation is a statement too: the new public key, signed by the one before it.
 *
 * Keys travel as base64 of their SubjectPublicKeyInfo (DER, 44 bytes for Ed25519); fingerprints are
 * `SHA256:` and the unpadded base64 of the DER's sha256, as ssh prints them.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import type { ReleaseArtifact } from '../domain/types.js';

export type { ReleaseArtifact } from '../domain/types.js';

/** A rotation: `publicKey` is endorsed by the key whose fingerprint is `signedBy`. */
export interface KeyEndorsement {
  publicKey: string;
  signedBy: string;
  signature: string;
}

/** The server's release key as it offers it to agents: the current key and every rotation since the first. */
export interface ReleaseKeyOffer {
  publicKey: string;
  fingerprint: string;
  endorsements: KeyEndorsement[];
}

export function releaseStatement(artifact: ReleaseArtifact): Buffer {
  return Buffer.from(`fleetpatch-agent release\nversion ${artifact.version}\nplatform ${artifact.platform}\nsize ${artifact.size}\nsha256 ${artifact.sha256.toLowerCase()}\n`, 'utf8');
}

export function rotationStatement(publicKey: string): Buffer {
  return Buffer.from(`fleetpatch release key rotation\nnext ${publicKey}\n`, 'utf8');
}

export function keyFingerprint(publicKey: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(publicKey, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** True when `signature` (base64) is `publicKey`'s Ed25519 signature of `statement`; false for anything malformed. */
export function verifyStatement(publicKey: string, statement: Buffer, signature: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, statement, key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * The key to pin after the server offered `offer` to an agent that pinned `pinned`: the same key, or
 * the offered one when a chain of endorsements leads from the pinned key to it, each signed by the
 * one before. Anything else keeps the pinned key and says why (a server whose key was replaced
 * rather than rotated must not be able to make agents trust it).
 */
export function nextPinnedKey(pinned: string, offer: ReleaseKeyOffer): { publicKey: string; rotated: number } | { problem: string } {
  if (offer.publicKey === pinned) return { publicKey: pinned, rotated: 0 };
  let current = pinned;
  let rotated = 0;
  // Each step moves to a key endorsed by the current one: at most one step per endorsement.
  for (let step = 0; step < offer.endorsements.length && current !== offer.publicKey; step++) {
    const fingerprint = keyFingerprint(current);
    const next = offer.endorsements.find((e) => e.signedBy === fingerprint && verifyStatement(current, rotationStatement(e.publicKey), e.signature));
    if (!next) break;
    current = next.publicKey;
    rotated += 1;
  }
  if (current === offer.publicKey) return { publicKey: current, rotated };
  return {
    problem: `the server's release key ${offer.fingerprint} is not endorsed by the key this agent pinned (${keyFingerprint(pinned)}): it keeps the pinned key, and refuses upgrades signed by any other`,
  };
}
