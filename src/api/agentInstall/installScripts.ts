import fs from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AgentRelease } from '../../release/agentRelease.js';

/**
 * The install scripts the server serves (packaging/install/install.sh and install.ps1), with the
 * server's part filled in: its address, the agent version, and the packages with their sha256. The
 * scripts' own code is the same for every server.
 */
const TEMPLATES = fileURLToPath(new URL('../../../packaging/install/', import.meta.url));
const BEGIN = "# --- the server's part ---\n";
const END = "# --- end of the server's part ---\n";

/** A value the scripts carry in single quotes: never a quote, a backslash or a shell character (newlines only where allowed). */
function quoted(value: string, multiline = false): string {
  if (/['\r\\`$]/.test(value) || (!multiline && value.includes('\n'))) throw new Error(`cannot put ${JSON.stringify(value)} into an install script`);
  return `'${value}'`;
}

function withServerPart(template: string, lines: string[]): string {
  const start = template.indexOf(BEGIN);
  const end = template.indexOf(END);
  if (start < 0 || end < start) throw new Error('an install script template lost its markers');
  return `${template.slice(0, start + BEGIN.length)}${lines.join('\n')}\n${template.slice(end)}`;
}

let templates: { sh: string; ps1: string } | undefined;
function loadTemplates() {
  templates ??= { sh: fs.readFileSync(`${TEMPLATES}install.sh`, 'utf8'), ps1: fs.readFileSync(`${TEMPLATES}install.ps1`, 'utf8') };
  return templates;
}

export function installShellScript(release: AgentRelease, server: string): string {
  const linux = release.packages.filter((p) => p.format === 'deb' || p.format === 'rpm');
  const problem = linux.length > 0 ? '' : `the server at ${server} has no agent packages to install: ${release.missing.packages ?? 'it was built without Linux packages'}`.replace(/['`$\\]/g, '"');
  return withServerPart(loadTemplates().sh, [
    `FP_DEFAULT_SERVER=${quoted(server)}`,
    `FP_VERSION=${quoted(release.packagesVersion ?? '')}`,
    `FP_PACKAGES=${quoted(linux.map((p) => `${p.name} ${p.format} ${p.arch} ${p.sha256}`).join('\n'), true)}`,
    `FP_PROBLEM=${quoted(problem)}`,
  ]);
}

export function installPowerShellScript(release: AgentRelease, server: string): string {
  const zip = release.packages.find((p) => p.format === 'zip');
  const problem = zip ? '' : `the server at ${server} has no Windows agent package: ${release.missing.packages ?? 'it was built without it'}`.replace(/['`$\\]/g, '"');
  return withServerPart(loadTemplates().ps1, [
    `$FpDefaultServer = ${quoted(server)}`,
    `$FpVersion = ${quoted(release.packagesVersion ?? '')}`,
    `$FpZip = ${quoted(zip?.name ?? '')}`,
    `$FpZipSha256 = ${quoted(zip?.sha256 ?? '')}`,
    `$FpProblem = ${quoted(problem)}`,
  ]);
}

/** The one line per platform that installs the agent and enrolls with `secret`. */
export function installCommands(server: string, secret: string): { linux: string; windows: string } {
  return {
    linux: `curl -fsSL ${server}/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=${secret} sh`,
    windows: `$env:FLEETPATCH_ENROLL_KEY='${secret}'; irm ${server}/agent/install.ps1 | iex`,
  };
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The address a client reached this server at, from its Host header (and X-Forwarded-Proto from a
 * TLS-terminating proxy): what the install commands use when FLEETPATCH_PUBLIC_URL is not set.
 * Undefined for a Host that is not a plain host name or address.
 */
export function requestOrigin(headers: IncomingHttpHeaders, encrypted: boolean): string | undefined {
  const host = headers.host;
  if (!host || !HOST.test(host)) return undefined;
  const forwarded = String(headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim().toLowerCase();
  const scheme = encrypted || forwarded === 'https' ? 'https' : 'http';
  return `${scheme}://${host}`;
}
