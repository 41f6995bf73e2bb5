import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { addAgentCommands } from '../../src/agent/cli.js';
import { buildProgram } from '../../src/cli/program.js';
import { allCommands, commandPath } from '../../src/commandLine.js';
import { FLEETPATCH_BIN } from '../support/processes.js';

const AGENT_BUNDLE = new URL('../../dist/agent/fleetpatch-agent.mjs', import.meta.url).pathname;

/**
 * Every command and subcommand of `fleetpatch` and of the standalone agent, found by walking the
 * program the binaries are built from, is run as a real process, as a user would type it.
 */
describe('the command line', () => {
  // An empty working folder with nothing configured: a --help that started anything would leave
  // files here (the dev stack's .fleetpatch) or fail on the unreachable database.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-cli-'));
  const env = { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', TEMPORAL_ADDRESS: '127.0.0.1:1', FLEETPATCH_DATA_DIR: '', NODE_ENV: undefined };
  afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }));

  function run(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [script, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** The words after the program's name: ['agent', 'run']. */
  const wordsOf = (command: Command) => commandPath(command).split(' ').slice(1);

  const programs = [
    { script: FLEETPATCH_BIN, root: buildProgram() },
    { script: AGENT_BUNDLE, root: addAgentCommands(new Command('fleetpatch-agent')) },
  ];
  const cases = programs.flatMap(({ script, root }) => allCommands(root).map((command) => ({ script, command, name: commandPath(command) })));

  it('walks every command (a new one is walked without touching this test)', () => {
    expect(cases.map((c) => c.name)).toEqual(
      expect.arrayContaining(['fleetpatch dev', 'fleetpatch server', 'fleetpatch worker', 'fleetpatch token revoke', 'fleetpatch agent run', 'fleetpatch agent assess', 'fleetpatch simulate', 'fleetpatch-agent run']),
    );
  });

  it.each(cases)('$name --help (and -h) prints its usage and every option, exits 0 and starts nothing', async ({ script, command, name }) => {
    for (const flag of ['--help', '-h']) {
      const result = await run(script, [...wordsOf(command), flag]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(new RegExp(`^Usage: ${name.replace(/ /g, ' ')} `));
      for (const option of command.options) expect(result.stdout).toContain(option.long!);
      // Hidden commands (the agent's upgrade watchdog, which it starts itself) are not for people.
      for (const sub of command.createHelp().visibleCommands(command)) expect(result.stdout).toContain(sub.name());
    }
    expect(fs.readdirSync(cwd)).toEqual([]);
  });

  it.each(cases)('$name with an unknown option says so in one line and exits 2', async ({ script, command, name }) => {
    // Mandatory options are given, so that the unknown one is what is wrong.
    const mandatory = command.options.filter((option) => option.mandatory).flatMap((option) => [option.long!, 'x']);
    const result = await run(script, [...wordsOf(command), ...mandatory, '--no-such-option']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`${name}: unknown option '--no-such-option' (see \`${name} --help\`)\n`);
    expect(fs.readdirSync(cwd)).toEqual([]);
  });

  it('names an unknown command, a missing argument and conflicting options in one line each', async () => {
    expect(await run(FLEETPATCH_BIN, ['frobnicate'])).toEqual({ code: 2, stdout: '', stderr: "fleetpatch: unknown command 'frobnicate' (see `fleetpatch --help`)\n" });
    expect(await run(FLEETPATCH_BIN, ['token', 'revoke'])).toEqual({ code: 2, stdout: '', stderr: "fleetpatch token revoke: missing required argument 'id' (see `fleetpatch token revoke --help`)\n" });
    expect(await run(AGENT_BUNDLE, ['run', '--server', 'http://x', '--enroll-key-file', 'f', '--enroll-key', 'k'])).toEqual({
      code: 2,
      stdout: '',
      stderr: "fleetpatch-agent run: option '--enroll-key-file <file>' cannot be used with option '--enroll-key <key>' (see `fleetpatch-agent run --help`)\n",
    });
  });

  it('fleetpatch dev --print-env without a running dev stack says what to do in one line', async () => {
    const result = await run(FLEETPATCH_BIN, ['dev', '--print-env']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `fleetpatch: fleetpatch dev is not running with the data folder ${fs.realpathSync(cwd)}/.fleetpatch: start it (npm start), then run this again from the same folder (or with the same FLEETPATCH_DATA_DIR).\n`,
    );
    expect(fs.readdirSync(cwd)).toEqual([]);
  });
});
