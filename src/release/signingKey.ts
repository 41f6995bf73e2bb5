import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { keyFingerprint, releaseStatement, rotationStatement, type KeyEndorsement, type ReleaseArtifact, type ReleaseKeyOffer } from '../agent/release.js';

/**
 * The server's release signing key: an Ed25519 key pair whose public half every agent pins at
 * enrollment, and whose private half signs the agent executables the server offers in upgrades.
 *
 * It lives in a file (FLEETPATCH_RELEASE_KEY_FILE, by default `<data dir>/release-key.json`, mode
 * 0600), not in the database: whoever holds it can make every agent of the fleet run a program of
 * their choosing as root, and a database travels further than the API's hosts (dumps, backups,
 * replicas, anyone granted SQL read access for reports). Every API replica needs the same file (copy
 * it, or mount one secret); a replica with another key offers releases the agents refuse
 * (BAD_SIGNATURE), it cannot make them trust it.
 *
 * A rotation (`fleetpatch release-key --rotate`) makes a new pair and signs the new public key with
 * the old private key, which is then forgotten; the file keeps every such endorsement, and agents
 * follow the chain from the key they pinned at their next check-in.
 */
export interface ReleaseSigningKey {
  file: string;
  privateKey: KeyObject;
  /** base64 of the SubjectPublicKeyInfo (DER). */
  publicKey: string;
  fingerprint: string;
  createdAt: string;
  endorsements: KeyEndorsement[];
}

interface KeyFile {
  privateKey: string;
  publicKey: string;
  createdAt: string;
  endorsements: KeyEndorsement[];
}

export class ReleaseKeyError extends Error {
  override name = 'ReleaseKeyError';
}

function publicKeyOf(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64');
}

function fromFile(file: string, content: KeyFile): ReleaseSigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(content.privateKey);
  } catch (error) {
    throw new ReleaseKeyError(`${file} holds no readable private key (${(error as Error).message}).`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new ReleaseKeyError(`${file} holds a ${privateKey.asymmetricKeyType} key; release keys are Ed25519.`);
  const publicKey = publicKeyOf(privateKey);
  if (content.publicKey !== publicKey) throw new ReleaseKeyError(`${file}: its public key does not belong to its private key; the file was edited or damaged.`);
  return { file, privateKey, publicKey, fingerprint: keyFingerprint(publicKey), createdAt: content.createdAt, endorsements: content.endorsements ?? [] };
}

function serialise(key: { privateKey: KeyObject; publicKey: string; createdAt: string; endorsements: KeyEndorsement[] }): string {
  const content: KeyFile = {
    privateKey: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: key.publicKey,
    createdAt: key.createdAt,
    endorsements: key.endorsements,
  };
  return `${JSON.stringify(content, null, 2)}\n`;
}

/** The key in `file`, or undefined when there is no such file. */
export function readReleaseKey(file: string): ReleaseSigningKey | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ReleaseKeyError(`${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
  }
  let content: KeyFile;
  try {
    content = JSON.parse(text) as KeyFile;
  } catch {
    throw new ReleaseKeyError(`${file} is not a fleetpatch release key file (not JSON).`);
  }
  return fromFile(file, content);
}

function newKey(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/**
 * The key in `file`, made first when there is none. Made with O_EXCL: two processes starting at
 * once end with the same key, never with one each.
 */
export function ensureReleaseKey(file: string): { key: ReleaseSigningKey; created: boolean } {
  const existing = readReleaseKey(file);
  if (existing) return { key: existing, created: false };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const made = newKey();
  try {
    fs.writeFileSync(file, serialise({ ...made, createdAt: new Date().toISOString(), endorsements: [] }), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new ReleaseKeyError(`${file} cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
    return { key: readReleaseKey(file)!, created: false };
  }
  return { key: readReleaseKey(file)!, created: true };
}

/** A new key, endorsed by the current one (which is then gone from the file). */
export function rotateReleaseKey(file: string): { key: ReleaseSigningKey; previous: ReleaseSigningKey } {
  const previous = readReleaseKey(file);
  if (!previous) throw new ReleaseKeyError(`${file} does not exist: there is no key to rotate (\`fleetpatch release-key\` makes one).`);
  const made = newKey();
  const endorsement: KeyEndorsement = {
    publicKey: made.publicKey,
    signedBy: previous.fingerprint,
    signature: sign(null, rotationStatement(made.publicKey), previous.privateKey).toString('base64'),
  };
  const partial = `${file}.partial-${process.pid}`;
  fs.writeFileSync(partial, serialise({ ...made, createdAt: new Date().toISOString(), endorsements: [...previous.endorsements, endorsement] }), { mode: 0o600 });
  fs.renameSync(partial, file);
  return { key: readReleaseKey(file)!, previous };
}

export function signArtifact(key: ReleaseSigningKey, artifact: ReleaseArtifact): string {
  return sign(null, releaseStatement(artifact), key.privateKey).toString('base64');
}

export function releaseKeyOffer(key: ReleaseSigningKey): ReleaseKeyOffer {
  return { publicKey: key.publicKey, fingerprint: key.fingerprint, endorsements: key.endorsements };
}
