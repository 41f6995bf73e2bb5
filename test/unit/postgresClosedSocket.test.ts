import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * postgres.js 3.4.9 writes a short message from a setImmediate; when PostgreSQL closed the
 * connection first, that write dereferenced the null socket and threw an uncaught TypeError that
 * ended the whole process (porsager/postgres#1154, #1208; seen in the worker's webhook loop while
 * PostgreSQL restarted). patches/postgres+3.4.9.patch guards the write and rejects the query with
 * CONNECTION_CLOSED instead, which the callers already handle as "the database is away".
 *
 * The server here speaks just enough of the protocol to accept a connection, then closes it the way
 * a dying PostgreSQL does (a FIN, no error): a reserved connection keeps the closed connection, so
 * the next query on it is queued for a socket that is gone, every time.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const authenticationOk = message('R', Buffer.from([0, 0, 0, 0]));
const readyForQuery = message('Z', Buffer.from('I'));
/** What PostgreSQL answers a parsed, described and executed query that returns no rows. */
const emptyAnswer = Buffer.concat([
  message('1', Buffer.alloc(0)),
  message('t', Buffer.from([0, 0])),
  message('n', Buffer.alloc(0)),
  message('2', Buffer.alloc(0)),
  message('C', Buffer.from('SELECT 0\0')),
  readyForQuery,
]);

/** Accepts every startup and answers every query (the client's type look-up) with no rows; the test closes the socket. */
async function closingServer(): Promise<{ port: number; startups: Promise<net.Socket>; stop: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  let started: (socket: net.Socket) => void = () => undefined;
  const startups = new Promise<net.Socket>((resolve) => (started = resolve));
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.once('data', () => {
      socket.write(Buffer.concat([authenticationOk, readyForQuery]));
      socket.on('data', () => {
        socket.write(emptyAnswer);
        started(socket);
      });
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    startups,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A process that reserves a connection, waits for its close, then queries on it; prints how the query ended. */
const CLIENT = `
import postgres from 'postgres';
const sql = postgres({ host: '127.0.0.1', port: Number(process.env.PORT), user: 'u', database: 'd', max: 1 });
const reserved = await sql.reserve();
process.stdout.write('reserved\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
try {
  await reserved\`select 1\`;
  console.log('answered');
} catch (error) {
  console.log('rejected', error.code);
}
process.exit(0);
`;

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

describe('postgres.js when PostgreSQL closes a connection under a queued query', () => {
  it('rejects the query with CONNECTION_CLOSED instead of killing the process', async () => {
    const server = await closingServer();
    stops.push(server.stop);
    const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT], { cwd: ROOT, env: { ...process.env, PORT: String(server.port) }, stdio: ['pipe', 'pipe', 'pipe'] });
    stops.push(async () => void child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    const socket = await server.startups;
    const reserved = new Promise<void>((resolve) => {
      const check = () => (stdout.includes('reserved') ? resolve() : child.stdout.once('data', check));
      check();
    });
    await Promise.race([reserved, exited.then(() => expect.fail(`the client ended before it reserved a connection: ${stderr}`))]);
    // PostgreSQL goes away: the client sees the connection end without an error.
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.end();
    await closed;
    child.stdin.write('query\n');

    const code = await exited;
    expect(stderr).not.toMatch(/TypeError/);
    expect(stdout).toContain('rejected CONNECTION_CLOSED');
    expect(code).toBe(0);
  });
});
