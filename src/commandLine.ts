import type { Command, CommanderError } from 'commander';

/**
 * The command line of `fleetpatch` and of the standalone agent (`fleetpatch-agent`), parsed by
 * commander so that every command's usage, `--help` and usage errors come from one place. This
 * module is shared by the agent's bundle: it may import nothing but commander.
 */

/** A mistake in how a command was called; exit code 2, as most Unix commands do. */
export const USAGE_EXIT_CODE = 2;

/** `fleetpatch agent run`: the words a user types to reach a command. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Every command below `root`, and root itself, depth first. */
export function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((c) => allCommands(c as Command))];
}

class UsageError extends Error {
  constructor(
    readonly command: Command,
    readonly commander: CommanderError,
  ) {
    super(commander.message);
  }
}

/**
 * Parses `argv` (without node and the script) and runs the chosen command's action. Help and
 * `--version` exit 0 without running anything; a usage mistake (unknown option or command, a
 * missing value) prints one line that names the command and its `--help`, and exits 2; an error
 * of a type in `expected` (or in what it loads, once an error happened) prints its message alone and exits 1; anything else is printed in full
 * (it is a bug) and exits 1. Streams to a pipe or a terminal are written synchronously on Linux,
 * so nothing printed is lost to process.exit.
 */
type ErrorTypes = Array<abstract new (...args: never[]) => Error>;

export async function runCommandLine(program: Command, argv: string[], expected: ErrorTypes | (() => Promise<ErrorTypes>)): Promise<void> {
  for (const command of allCommands(program)) {
    // commander prints its own message before calling the exit callback: the line is written here,
    // with the command it belongs to.
    command.configureOutput({ outputError: () => undefined });
    command.exitOverride((error) => {
      throw new UsageError(command, error);
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof UsageError) {
      if (error.commander.exitCode === 0 || error.commander.code === 'commander.help') {
        // Help asked for (or shown for a command group called without its subcommand).
        return;
      }
      const path = commandPath(error.command);
      process.stderr.write(`${path}: ${error.message.replace(/^error: /, '')} (see \`${path} --help\`)\n`);
      process.exit(USAGE_EXIT_CODE);
    }
    const name = program.name();
    const types = typeof expected === 'function' ? await expected() : expected;
    if (types.some((type) => error instanceof type)) process.stderr.write(`${name}: ${(error as Error).message}\n`);
    else process.stderr.write(`${name}: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    // Whatever the command had started (servers, children) must not keep the process alive.
    process.exit(1);
  }
}
