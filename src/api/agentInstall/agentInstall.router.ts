import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DOWNLOAD_PATH } from '../../release/agentRelease.js';
import type { AgentDistribution } from './distribution.js';
import { installPowerShellScript, installShellScript, requestOrigin } from './installScripts.js';

export const INSTALL_SCRIPT_PATH = '/agent/install.sh';
export const INSTALL_POWERSHELL_PATH = '/agent/install.ps1';

/** `/agent/install.sh`, `/agent/install.ps1` and `/agent/download` with what is below it. */
export function isAgentInstallPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0]!;
  return path === INSTALL_SCRIPT_PATH || path === INSTALL_POWERSHELL_PATH || path === DOWNLOAD_PATH || path.startsWith(`${DOWNLOAD_PATH}/`);
}

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json);
}

function answerText(res: ServerResponse, type: string, text: string, head: boolean): void {
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(head ? undefined : text);
}

const refuse = (res: ServerResponse, status: number, code: string, message: string) => answerJson(res, status, { error: { code, message } });

/**
 * What machines download, without a credential (nothing here is secret): the install scripts with
 * this server's address and packages in them, and the files `npm run package` made, by the names
 * their manifests give (nothing else under dist/ is reachable). 503 names what the server lacks
 * when it was built without them; 404 lists what there is.
 */
export function agentInstallEndpoint(distribution: AgentDistribution, options: { encrypted: boolean }): (req: IncomingMessage, res: ServerResponse) => void {
  const { release } = distribution;
  const files = new Map([...release.executables, ...release.packages].map((f) => [f.name, f] as const));
  const index = () => ({
    version: release.version,
    executables: release.executables.map(({ platform, name, sha256, size }) => ({ platform, name, sha256, size, path: `${DOWNLOAD_PATH}/${name}` })),
    packages: release.packages.map(({ name, format, arch, platform, sha256, size }) => ({ name, format, arch, platform, sha256, size, path: `${DOWNLOAD_PATH}/${name}` })),
    missing: release.missing,
  });

  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://agent').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      res.setHeader('allow', 'GET, HEAD');
      return refuse(res, 405, 'BAD_USER_INPUT', `${path} answers GET only.`);
    }
    const head = req.method === 'HEAD';
    if (path === INSTALL_SCRIPT_PATH || path === INSTALL_POWERSHELL_PATH) {
      const server = distribution.publicUrl ?? requestOrigin(req.headers, options.encrypted);
      if (!server) return refuse(res, 400, 'BAD_USER_INPUT', 'The Host header is not a plain host name: set FLEETPATCH_PUBLIC_URL on the server, or ask for the script by its address.');
      // Served with 200 even without packages: piped into sh, a 503 would be an empty script that
      // "succeeds"; the script itself says what is missing and exits 1.
      return path === INSTALL_SCRIPT_PATH
        ? answerText(res, 'text/x-shellscript; charset=utf-8', installShellScript(release, server), head)
        : answerText(res, 'text/plain; charset=utf-8', installPowerShellScript(release, server), head);
    }
    if (path === DOWNLOAD_PATH || path === `${DOWNLOAD_PATH}/`) return answerJson(res, 200, index());
    const name = decodeURIComponent(path.slice(DOWNLOAD_PATH.length + 1));
    if (name === 'SHA256SUMS') {
      const all = [...release.executables, ...release.packages];
      if (all.length === 0) return refuse(res, 503, 'UNAVAILABLE', `${release.missing.executables} ${release.missing.packages}`);
      return answerText(res, 'text/plain; charset=utf-8', all.map((f) => `${f.sha256}  ${f.name}`).join('\n') + '\n', head);
    }
    const file = files.get(name);
    if (!file) {
      const executable = /^fleetpatch-agent-(linux|windows)-/.test(name);
      const missing = executable ? release.missing.executables : /\.(deb|rpm|zip|msi)$/.test(name) ? release.missing.packages : null;
      if (missing) return refuse(res, 503, 'UNAVAILABLE', missing);
      return refuse(res, 404, 'NOT_FOUND', `No such agent file: ${name}. This server offers: ${[...files.keys()].join(', ') || 'nothing'} (see ${DOWNLOAD_PATH}/).`);
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file.file);
    } catch {
      return refuse(res, 503, 'UNAVAILABLE', `${file.name} was removed from this server's dist folder after it started: run \`npm run package\` and restart it.`);
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': stat.size,
      'content-disposition': `attachment; filename="${file.name}"`,
      'x-checksum-sha256': file.sha256,
    });
    if (head) return res.end();
    const stream = fs.createReadStream(file.file);
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
    stream.pipe(res);
  };
}
