import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OperatorError } from './errors.js';

/**
 * Where the operator commands find the API and their token: `FLEETPATCH_SERVER` and
 * `FLEETPATCH_TOKEN` when set (each on its own), else what `fleetpatch login` saved in
 * `~/.config/fleetpatch/credentials.json` (`$XDG_CONFIG_HOME/fleetpatch` when that is set): a file
 * of mode 0600 in a folder of mode 0700, since the token is as good as a password.
 */
export interface Credentials {
  /** The API's GraphQL URL (`http://host:4000/graphql`). */
  graphqlUrl: string;
  token: string;
}

interface SavedCredentials {
  server: string;
  token: string;
  savedAt: string;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'fleetpatch');
}

export const credentialsFile = (env: NodeJS.ProcessEnv = process.env) => path.join(configDir(env), 'credentials.json');

const LOGIN_HINT = 'log in with `fleetpatch login --server URL` (it reads an API token on stdin), or set FLEETPATCH_SERVER and FLEETPATCH_TOKEN';

/**
 * The GraphQL URL of a server as the operator typed it: `host:4000`, `http://host:4000`,
 * `https://host/` or the `/graphql` URL itself.
 */
export function graphqlUrlOf(server: string): string {
  const text = server.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new OperatorError(`"${server}" is not a server URL; give one such as http://fleetpatch.example.com:4000.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OperatorError(`The server URL must be http:// or https://; got ${url.protocol}//.`);
  if (text === '' || url.hostname === '') throw new OperatorError('The server URL is empty; give one such as http://fleetpatch.example.com:4000.');
  url.hash = '';
  url.search = '';
  if (!url.pathname.endsWith('/graphql')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/graphql`;
  return url.toString();
}

function readSaved(env: NodeJS.ProcessEnv): SavedCredentials | null {
  const file = credentialsFile(env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OperatorError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  let saved: Partial<SavedCredentials>;
  try {
    saved = JSON.parse(text) as Partial<SavedCredentials>;
  } catch {
    throw new OperatorError(`${file} is not the JSON \`fleetpatch login\` writes; ${LOGIN_HINT}.`);
  }
  if (typeof saved.server !== 'string' || typeof saved.token !== 'string') throw new OperatorError(`${file} has no server and token; ${LOGIN_HINT}.`);
  return { server: saved.server, token: saved.token, savedAt: String(saved.savedAt ?? '') };
}

/** The server and token to use, or an error that says how to log in. */
export function loadCredentials(env: NodeJS.ProcessEnv = process.env): Credentials {
  const fromEnv = { server: env.FLEETPATCH_SERVER?.trim() || undefined, token: env.FLEETPATCH_TOKEN?.trim() || undefined };
  const saved = fromEnv.server && fromEnv.token ? null : readSaved(env);
  const server = fromEnv.server ?? saved?.server;
  const token = fromEnv.token ?? saved?.token;
  if (!server && !token) throw new OperatorError(`Not logged in to a fleetpatch server: ${LOGIN_HINT}.`);
  if (!server) throw new OperatorError(`No server: FLEETPATCH_TOKEN is set but FLEETPATCH_SERVER is not; set it, or ${LOGIN_HINT}.`);
  if (!token) throw new OperatorError(`No API token for ${server}: FLEETPATCH_SERVER is set but FLEETPATCH_TOKEN is not; set it, or ${LOGIN_HINT}.`);
  return { graphqlUrl: graphqlUrlOf(server), token };
}

/**
 * Saves what `login` checked. The token goes into a new file created with mode 0600 (umask can only
 * take bits away), which then replaces the old one: there is no moment when it is readable by others.
 */
export function saveCredentials(server: string, token: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = configDir(env);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = credentialsFile(env);
  const temporary = `${file}.${process.pid}.tmp`;
  const saved: SavedCredentials = { server, token, savedAt: new Date().toISOString() };
  fs.writeFileSync(temporary, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  fs.renameSync(temporary, file);
  return file;
}

/** Forgets the saved token; true when there was one. */
export function removeCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    fs.unlinkSync(credentialsFile(env));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
