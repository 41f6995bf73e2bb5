import fs from 'node:fs';
import path from 'node:path';
import type { UpgradeArtifact } from '../agent/protocol.js';
import { signArtifact, type ReleaseSigningKey } from './signingKey.js';

/**
 * The agent executables and packages this server was built with, as `npm run package` left them
 * (scripts/build-agent-executables.mjs and scripts/package-agent.mjs each write a manifest.json
 * beside their files): read once when the server starts. The server serves only files its
 * manifests name, and offers upgrades to the executables' version.
 */
export interface ExecutableFile {
  platform: string;
  name: string;
  sha256: string;
  size: number;
  file: string;
}

export interface PackageFile {
  name: string;
  format: 'deb' | 'rpm' | 'zip' | 'msi';
  /** amd64, arm64 (deb); x86_64, aarch64 (rpm); x64 (zip, msi). */
  arch: string;
  platform: string;
  sha256: string;
  size: number;
  file: string;
}

export interface AgentRelease {
  /** The executables' version: what `upgradeAgents` installs and what agents are compared with. Null without executables. */
  version: string | null;
  /** The agent version inside the packages (the same as `version` when both come from one build). */
  packagesVersion: string | null;
  executables: ExecutableFile[];
  packages: PackageFile[];
  /** Why there are no executables / no packages, in words for whoever runs the server; null when there are. */
  missing: { executables: string | null; packages: string | null };
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._~+-]*$/;

function readManifest<T>(dir: string, what: string): { manifest: T } | { missing: string } {
  const file = path.join(dir, 'manifest.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    const older = fs.existsSync(path.join(dir, 'SHA256SUMS'));
    return {
      missing: older
        ? `${dir} holds ${what} from a build before manifests: run \`npm run package\` again where the server is built, then restart the server.`
        : `This server was built without the agent ${what} (${dir} is missing): run \`npm run package\` where it is built, then restart it.`,
    };
  }
  try {
    return { manifest: JSON.parse(text) as T };
  } catch {
    return { missing: `${file} is not JSON: run \`npm run package\` again.` };
  }
}

/** The files a manifest lists that are really there; names that are not plain file names are ignored. */
function present<T extends { name: string }>(dir: string, files: T[] | undefined): Array<T & { file: string }> {
  return (files ?? []).filter((f) => FILE_NAME.test(f.name) && fs.existsSync(path.join(dir, f.name))).map((f) => ({ ...f, file: path.join(dir, f.name) }));
}

export function readAgentRelease(distDir: string): AgentRelease {
  const executablesDir = path.join(distDir, 'executables');
  const packagesDir = path.join(distDir, 'packages');
  const executables = readManifest<{ version: string; files: Array<Omit<ExecutableFile, 'file'>> }>(executablesDir, 'executables');
  const packages = readManifest<{ version: string; files: Array<Omit<PackageFile, 'file'>> }>(packagesDir, 'packages');
  const executableFiles = 'manifest' in executables ? present(executablesDir, executables.manifest.files) : [];
  const packageFiles = 'manifest' in packages ? present(packagesDir, packages.manifest.files) : [];
  return {
    version: 'manifest' in executables && executableFiles.length > 0 ? executables.manifest.version : null,
    packagesVersion: 'manifest' in packages && packageFiles.length > 0 ? packages.manifest.version : null,
    executables: executableFiles,
    packages: packageFiles,
    missing: {
      executables: 'missing' in executables ? executables.missing : executableFiles.length === 0 ? `${executablesDir}/manifest.json names no executable that is there: run \`npm run package\` again.` : null,
      packages: 'missing' in packages ? packages.missing : packageFiles.length === 0 ? `${packagesDir}/manifest.json names no package that is there: run \`npm run package\` again.` : null,
    },
  };
}

export const DOWNLOAD_PATH = '/agent/download';

/** What an UPGRADE command carries: every executable of the release, signed by the release key. */
export function signedArtifacts(release: AgentRelease, key: ReleaseSigningKey): UpgradeArtifact[] {
  if (!release.version) return [];
  return release.executables.map((e) => {
    const artifact = { version: release.version!, platform: e.platform, sha256: e.sha256, size: e.size };
    return { ...artifact, path: `${DOWNLOAD_PATH}/${e.name}`, signature: signArtifact(key, artifact) };
  });
}
