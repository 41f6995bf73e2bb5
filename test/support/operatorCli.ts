import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FLEETPATCH_BIN, spawnFleetpatch, type Spawned } from './processes.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `fleetpatch` as an operator would, in a home folder of its own (its saved login lives
 * there), with only the environment given: no server or token unless the test says so.
 */
export class OperatorShell {
  readonly home = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-operator-'));

  constructor(private readonly baseEnv: NodeJS.ProcessEnv = {}) {}

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const { FLEETPATCH_SERVER: _s, FLEETPATCH_TOKEN: _t, XDG_CONFIG_HOME: _x, ...inherited } = process.env;
    return { ...inherited, HOME: this.home, NO_COLOR: '1', ...this.baseEnv, ...extra };
  }

  run(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [FLEETPATCH_BIN, ...args], { env: this.env(options.env), cwd: options.cwd ?? this.home, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(options.input ?? '');
    });
  }

  /** Starts a command and returns at once, to watch its output as it comes (`waitFor`). */
  start(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Spawned {
    return spawnFleetpatch(args, this.env(options.env));
  }

  /** Writes a file in the home folder and returns its path. */
  file(name: string, text: string): string {
    const full = path.join(this.home, name);
    fs.writeFileSync(full, text);
    return full;
  }

  remove(): void {
    fs.rmSync(this.home, { recursive: true, force: true });
  }
}

/** A CSV document as rows of fields (RFC 4180: quoted fields may hold commas, quotes and line breaks). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

/**
 * A TCP relay in front of a server (host:port): `cut()` drops its connections and refuses new
 * ones, so that a client behind it finds the server gone while the server goes on for the others;
 * `resume()` listens again on the same address. `dropNextAnswer()` closes the connection on which
 * the server next answers, without a byte of the answer passed on: what a client sees of a server
 * process that died once it had done the request's work. `connections` counts those it accepted.
 */
export async function tcpRelay(
  target: string,
): Promise<{ address: string; cut: () => void; resume: () => Promise<void>; close: () => void; dropNextAnswer: () => Promise<void>; readonly connections: number }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let dropping: (() => void) | undefined;
  const server = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (!dropping) return void client.write(chunk);
      const dropped = dropping;
      dropping = undefined;
      client.resetAndDestroy();
      upstream.destroy();
      dropped();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relayPort = (server.address() as net.AddressInfo).port;
  const cut = () => {
    if (server.listening) server.close();
    for (const s of sockets) s.destroy();
  };
  const resume = () => new Promise<void>((resolve, reject) => server.once('error', reject).listen(relayPort, '127.0.0.1', () => resolve()));
  return {
    address: `127.0.0.1:${relayPort}`,
    cut,
    resume,
    close: cut,
    /** Resolves once an answer was dropped. */
    dropNextAnswer: () => new Promise<void>((resolve) => (dropping = resolve)),
    get connections() {
      return connections;
    },
  };
}
