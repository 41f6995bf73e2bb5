import { ApiClient } from './client.js';
import { credentialsFile, graphqlUrlOf, removeCredentials, saveCredentials } from './credentials.js';
import { OperatorError } from './errors.js';
import { CliSystemStatusDocument } from './graphql.generated.js';

/** Reads the token: typed at a hidden prompt in a terminal, else the first line of stdin (a pipe, a file). */
async function readToken(graphqlUrl: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin) text += String(chunk);
    return text.split(/\r?\n/).find((line) => line.trim() !== '')?.trim() ?? '';
  }
  process.stderr.write(`API token for ${graphqlUrl} (not shown as you type): `);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  return new Promise((resolve) => {
    let typed = '';
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n' || char === '\u0004') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          resolve(typed.trim());
          return;
        }
        if (char === '\u0003') {
          stdin.setRawMode(false);
          process.stderr.write('\n');
          process.exit(130);
        }
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed += char;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/**
 * `fleetpatch login --server URL`: reads an API token, checks it against the server, and saves
 * both for the other commands. A token the server refuses is not saved.
 */
export async function login(options: { server: string }): Promise<void> {
  const graphqlUrl = graphqlUrlOf(options.server);
  const token = await readToken(graphqlUrl);
  if (token === '') throw new OperatorError('No token read from stdin: pipe one in (`fleetpatch login --server URL < token-file`) or type it at the prompt.');
  if (/\s/.test(token)) throw new OperatorError('The token holds white space; an API token is one word (fp_...).');
  const { systemStatus } = await new ApiClient({ graphqlUrl, token }).request(CliSystemStatusDocument);
  const file = saveCredentials(graphqlUrl, token);
  process.stdout.write(`Logged in to ${graphqlUrl} (fleetpatch ${systemStatus.version}); the token is kept in ${file} (mode 0600).\n`);
  const overridden = ['FLEETPATCH_SERVER', 'FLEETPATCH_TOKEN'].filter((name) => process.env[name]);
  if (overridden.length > 0) process.stderr.write(`Note: ${overridden.join(' and ')} ${overridden.length === 1 ? 'is' : 'are'} set in this shell and take${overridden.length === 1 ? 's' : ''} precedence over the saved login.\n`);
}

export async function logout(): Promise<void> {
  const removed = removeCredentials();
  process.stdout.write(removed ? `Logged out: ${credentialsFile()} removed.\n` : 'Not logged in: nothing to remove.\n');
}
