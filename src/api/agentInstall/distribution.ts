import type { UpgradeArtifact } from '../../agent/protocol.js';
import { releaseKeyOffer, type ReleaseSigningKey } from '../../release/signingKey.js';
import { readAgentRelease, signedArtifacts, type AgentRelease } from '../../release/agentRelease.js';
import type { ReleaseKeyOffer } from '../../agent/release.js';

/**
 * What this API process offers machines: the agent release it was built with (read once at start),
 * the release key agents pin, its signatures of the executables, and the address machines reach it
 * at. An API started without a release key (tests, or `startApiServer` without one) offers no key
 * and cannot start upgrades.
 */
export interface AgentDistribution {
  release: AgentRelease;
  releaseKey: ReleaseSigningKey | undefined;
  /** releaseKey's public part and rotations, as enrollment and check-in answers carry them. */
  offer: ReleaseKeyOffer | null;
  /** The release's executables, each signed: what an UPGRADE command carries. */
  artifacts: UpgradeArtifact[];
  publicUrl: string | undefined;
}

export function agentDistribution(options: { distDir?: string; releaseKey?: ReleaseSigningKey; publicUrl?: string }): AgentDistribution {
  const release: AgentRelease = options.distDir
    ? readAgentRelease(options.distDir)
    : { version: null, packagesVersion: null, executables: [], packages: [], missing: { executables: 'This server was started without agent executables.', packages: 'This server was started without agent packages.' } };
  return {
    release,
    releaseKey: options.releaseKey,
    offer: options.releaseKey ? releaseKeyOffer(options.releaseKey) : null,
    artifacts: options.releaseKey ? signedArtifacts(release, options.releaseKey) : [],
    publicUrl: options.publicUrl,
  };
}
