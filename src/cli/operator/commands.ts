import { Command, Option } from 'commander';

/**
 * The operator commands: `fleetpatch login`, `machines`, `updates`, `deployments`, `runs`,
 * `tokens`, `enrollment-keys`, `apply`, `diff`, `export`, `completion`. They speak only GraphQL to a
 * server (never to a database), with the token `login` saved or FLEETPATCH_SERVER and
 * FLEETPATCH_TOKEN. Definitions only: each command's code is imported when it runs, so that
 * `fleetpatch machines list` loads the little it needs (docs/cli.md, BENCHMARKS.md).
 */

const AUTH_HELP = `
Talks to the server of \`fleetpatch login\` (~/.config/fleetpatch/credentials.json), or to
FLEETPATCH_SERVER with FLEETPATCH_TOKEN when they are set. Exit codes: docs/cli.md.`;

const output = (formats: readonly string[] = ['table', 'json', 'csv']) => new Option('-o, --output <format>', `output format: ${formats.join(', ')}`).choices(formats).default(formats[0]);

/** Runs a command's code, then ends the process with its exit code (an idle keep-alive socket must not hold it). */
async function run(work: () => Promise<void>): Promise<void> {
  await work();
  process.exit(process.exitCode ?? 0);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function deploymentOptions(command: Command, creating: boolean): Command {
  return command
    .option('--os <type>', `LINUX or WINDOWS${creating ? ' (required)' : ''}`)
    .option('--classifications <list>', `comma-separated: CRITICAL,SECURITY,OTHER (Linux); CRITICAL,SECURITY,UPDATE_ROLLUP,... (Windows)${creating ? ' (required)' : ''}`)
    .option('--machine <name-or-id>', 'a machine to target, by name or id (repeatable; replaces the list)', collect)
    .option('--tag <tag>', 'target machines carrying this tag, evaluated at each run (repeatable; replaces the list)', collect)
    .option('--name-contains <text>', 'target machines whose name contains this, evaluated at each run')
    .option('--include <pattern>', 'always install what matches: openssl*, name=version, KB5031356 (repeatable)', collect)
    .option('--exclude <pattern>', 'never install what matches; wins over --include (repeatable)', collect)
    .option('--on-demand', 'no schedule: it runs only when `deployments run` starts it')
    .option('--start <date-time>', 'first run, ISO 8601 (default: in 30 minutes); a schedule option schedules an on-demand deployment')
    .option('--time-zone <zone>', 'IANA time zone of the schedule (default UTC)')
    .option('--end <date-time>', 'no run after this (recurring schedules; "none" to remove)')
    .option('--frequency <f>', 'ONCE (default), HOURLY, DAILY, WEEKLY or MONTHLY')
    .option('--every <n>', 'every N hours / days / weeks / months')
    .option('--week-days <list>', 'WEEKLY: days, e.g. TUE,THU')
    .option('--month-day <n>', 'MONTHLY: day of the month (1 to 28, -1 for the last)')
    .option('--nth-weekday <n:day>', 'MONTHLY: the nth weekday, e.g. 2:TUESDAY (Patch Tuesday) or last:FRIDAY')
    .option('--offset-days <n>', 'MONTHLY nth weekday: days after (before, negative) it, -6 to 6')
    .option('--window <minutes>', 'maintenance window, 30 to 360 minutes (default 120)')
    .option('--reboot <setting>', 'IF_REQUIRED (default), NEVER, ALWAYS or REBOOT_ONLY')
    .option('--max-concurrent <n|n%>', 'at most this many machines at once (10, or 25%; "none" to remove)')
    .option('--max-failures <n|n%>', 'start no new machine after this many failed (2, or 10%; "none" to remove)')
    .addOption(output(['table', 'json']));
}

export function addOperatorCommands(program: Command): Command {
  program
    .command('login')
    .description('check an API token against a server and keep both for the other commands (the token is read from stdin)')
    .requiredOption('--server <url>', 'the API: http://host:4000 (or its /graphql URL)')
    .addHelpText('after', '\nThe token is read from stdin: typed at a hidden prompt in a terminal, or piped in\n(`fleetpatch login --server URL < token-file`). It is kept in ~/.config/fleetpatch/credentials.json, mode 0600.')
    .action(async (options: { server: string }) => run(async () => (await import('./login.js')).login(options)));

  program
    .command('logout')
    .description('forget the saved server and token')
    .action(async () => run(async () => (await import('./login.js')).logout()));

  const machines = program.command('machines').description('the machines under management (the computers view)').addHelpText('after', AUTH_HELP);
  machines
    .command('list')
    .description('machines with their compliance, pending critical and security updates and agent readiness')
    .option('--compliance <list>', 'NON_COMPLIANT, NOT_ASSESSED, COMPLIANT (comma-separated)')
    .option('--readiness <list>', 'READY, DISCONNECTED, NOT_CONFIGURED (comma-separated)')
    .option('--os <type>', 'LINUX or WINDOWS')
    .option('--name <text>', 'names containing this (any case)')
    .option('--tag <tag>', 'machines carrying this tag (repeatable: every one)', collect)
    .option('--sort <field>', 'name, compliance (default: non-compliant first), critical-and-security, other, last-seen, last-assessed')
    .option('--desc', 'sort descending')
    .option('--limit <n>', 'page size, 1 to 500 (default 50)')
    .option('--after <cursor>', 'the page after this cursor (printed with each page)')
    .option('--all', 'every page')
    .addOption(output())
    .action(async (options) => run(async () => (await import('./machines.js')).machinesList(options)));
  machines
    .command('show')
    .description("a machine's facts, warnings and pending updates")
    .argument('<machine>', 'name or id')
    .option('--updates <n>', 'pending updates to show, 0 to 500 (default 50)')
    .addOption(output())
    .action(async (ref: string, options) => run(async () => (await import('./machines.js')).machinesShow(ref, options)));
  machines
    .command('assess')
    .description('ask the agents of these machines for a fresh assessment now (exit 1 if one could not be asked)')
    .argument('<machines...>', 'names or ids')
    .addOption(output())
    .action(async (refs: string[], options) => run(async () => (await import('./machines.js')).machinesAssess(refs, options)));

  const updates = program.command('updates').description('updates across the fleet').addHelpText('after', AUTH_HELP);
  updates
    .command('missing')
    .description('updates missing on at least one machine, critical first, with how many machines miss each')
    .option('--classification <list>', 'CRITICAL, SECURITY, OTHER, ... (comma-separated)')
    .option('--os <type>', 'LINUX or WINDOWS')
    .option('--name <text>', 'names containing this')
    .option('--limit <n>', 'page size, 1 to 500 (default 50)')
    .option('--after <cursor>', 'the page after this cursor')
    .option('--all', 'every page')
    .addOption(output())
    .action(async (options) => run(async () => (await import('./machines.js')).updatesMissing(options)));

  const deployments = program.command('deployments').description('update deployments: what to install where, when, and within which window').addHelpText('after', AUTH_HELP);
  deployments
    .command('list')
    .description('every deployment, its schedule, next run and last run')
    .addOption(output())
    .action(async (options) => run(async () => (await import('./deployments.js')).deploymentsList(options)));
  deployments
    .command('show')
    .description('every field of a deployment')
    .argument('<deployment>', 'name or id')
    .addOption(output())
    .action(async (ref: string, options) => run(async () => (await import('./deployments.js')).deploymentsShow(ref, options)));
  deploymentOptions(deployments.command('create').description('create a deployment and its schedule').argument('<name>', 'a unique name'), true)
    .option('--paused', 'create it paused')
    .action(async (name: string, options) => run(async () => (await import('./deployments.js')).deploymentsCreate(name, options)));
  deploymentOptions(deployments.command('update').description('change a deployment: the options given replace those fields, the others stay').argument('<deployment>', 'name or id'), false)
    .option('--rename <name>', 'a new name')
    .action(async (ref: string, options) => run(async () => (await import('./deployments.js')).deploymentsUpdate(ref, options)));
  deployments
    .command('delete')
    .description('delete a deployment and its schedule (its runs and results stay)')
    .argument('<deployment>', 'name or id')
    .action(async (ref: string) => run(async () => (await import('./deployments.js')).deploymentsDelete(ref)));
  deployments
    .command('pause')
    .description('pause its schedule: no run starts until it is resumed')
    .argument('<deployment>', 'name or id')
    .action(async (ref: string) => run(async () => (await import('./deployments.js')).deploymentsPause(ref, true)));
  deployments
    .command('resume')
    .description('resume its schedule')
    .argument('<deployment>', 'name or id')
    .action(async (ref: string) => run(async () => (await import('./deployments.js')).deploymentsPause(ref, false)));
  deployments
    .command('run')
    .description('run a deployment now; with --watch, follow it and exit with its outcome (0 SUCCEEDED, 3 PARTIALLY_FAILED, 4 FAILED, 5 CANCELED)')
    .argument('<deployment>', 'name or id')
    .option('-w, --watch', 'follow the run to its end: a bar per machine in a terminal, lines otherwise')
    .option('--logs', 'with --watch: also print the job stream of every machine')
    .option('--plain', 'with --watch: lines even in a terminal')
    .action(async (ref: string, options) => run(async () => (await import('./deployments.js')).deploymentsRun(ref, options)));

  const runs = program.command('runs').description('deployment runs').addHelpText('after', AUTH_HELP);
  runs
    .command('list')
    .description('the runs of a deployment, newest first')
    .argument('<deployment>', 'name or id')
    .option('--limit <n>', 'page size, 1 to 500 (default 50)')
    .option('--after <cursor>', 'the page after this cursor')
    .option('--all', 'every page')
    .addOption(output())
    .action(async (ref: string, options) => run(async () => (await import('./runs.js')).runsList(ref, options)));
  runs
    .command('show')
    .description('a run: its status, each machine, every failed update with its error')
    .argument('<run>', 'the run id')
    .addOption(output())
    .action(async (ref: string, options) => run(async () => (await import('./runs.js')).runsShow(ref, options)));
  runs
    .command('watch')
    .description('follow a run to its end and exit with its outcome (0 SUCCEEDED, 3 PARTIALLY_FAILED, 4 FAILED, 5 CANCELED)')
    .argument('[run]', 'the run id')
    .option('--next <deployment>', 'wait for the next run of this deployment (name or id) to begin, then follow it')
    .option('--logs', 'also print the job stream of every machine')
    .option('--plain', 'lines even in a terminal')
    .action(async (ref: string | undefined, options) => run(async () => (await import('./runs.js')).runsWatch(ref, options)));
  runs
    .command('cancel')
    .description('cancel a run: machines not started stay so, running ones are stopped')
    .argument('<run>', 'the run id')
    .action(async (ref: string) => run(async () => (await import('./runs.js')).runsCancel(ref)));

  const tokens = program.command('tokens').description('API tokens, over the API (an ADMIN token); `fleetpatch token` does the same on the database').addHelpText('after', AUTH_HELP);
  tokens
    .command('list')
    .description('every token, without its secret')
    .addOption(output())
    .action(async (options) => run(async () => (await import('./access.js')).tokensList(options)));
  tokens
    .command('create')
    .description('create a token; its secret alone is printed on stdout, this once')
    .requiredOption('--name <name>', 'what the token is for')
    .requiredOption('--role <role>', 'VIEWER, OPERATOR or ADMIN')
    .option('--expires <when>', '90d, 12h, 30m, an ISO date-time, or never (default never)')
    .addOption(output(['table', 'json']))
    .action(async (options) => run(async () => (await import('./access.js')).tokensCreate(options)));
  tokens
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>', 'the token id')
    .action(async (id: string) => run(async () => (await import('./access.js')).tokensRevoke(id)));

  const keys = program.command('enrollment-keys').description('keys agents enroll their machines with (an ADMIN token)').addHelpText('after', AUTH_HELP);
  keys
    .command('list')
    .description('every enrollment key, with its uses, without its secret')
    .addOption(output())
    .action(async (options) => run(async () => (await import('./access.js')).enrollmentKeysList(options)));
  keys
    .command('create')
    .description('create a key; the key alone is printed on stdout, this once')
    .requiredOption('--description <text>', 'what the key is for')
    .option('--expires <when>', '24h (default), 7d, an ISO date-time, or never')
    .option('--max-uses <n>', 'machines that may enroll with it (default 10)')
    .option('--unlimited', 'any number of machines')
    .option('--tag <tag>', 'a tag every machine enrolled with it starts with (repeatable)', collect)
    .addOption(output(['table', 'json']))
    .action(async (options) => run(async () => (await import('./access.js')).enrollmentKeysCreate(options)));
  keys
    .command('revoke')
    .description('revoke a key: agents presenting it are refused; enrolled machines keep working')
    .argument('<id>', 'the key id')
    .action(async (id: string) => run(async () => (await import('./access.js')).enrollmentKeysRevoke(id)));

  program
    .command('apply')
    .description('create or update deployments by name from YAML or JSON files; nothing changes unless every deployment passes every check')
    .requiredOption('-f, --file <file>', 'a deployments file (repeatable; - for stdin)', collect)
    .addHelpText('after', `\nThe file format and an example: docs/cli.md. Applying the same file twice changes nothing.${AUTH_HELP}`)
    .action(async (options: { file: string[] }) => run(async () => (await import('./deploymentFile.js')).applyCommand(options)));
  program
    .command('diff')
    .description('what `apply` would change, field by field (exit 0: nothing, 6: something would change)')
    .requiredOption('-f, --file <file>', 'a deployments file (repeatable; - for stdin)', collect)
    .addHelpText('after', AUTH_HELP)
    .action(async (options: { file: string[] }) => run(async () => (await import('./deploymentFile.js')).diffCommand(options)));
  program
    .command('export')
    .description('write the server’s state in the format `apply` takes')
    .addCommand(
      new Command('deployments')
        .description('every deployment, every field, as YAML (or JSON)')
        .addOption(output(['yaml', 'json']))
        .addHelpText('after', AUTH_HELP)
        .action(async (options: { output?: string }) => run(async () => (await import('./deploymentFile.js')).exportDeployments(options))),
    );

  program
    .command('completion')
    .description('print the shell completion script for bash or zsh')
    .argument('<shell>', 'bash or zsh')
    .addHelpText('after', '\nbash: source <(fleetpatch completion bash)   (or save it in /etc/bash_completion.d/fleetpatch)\nzsh:  fleetpatch completion zsh > "${fpath[1]}/_fleetpatch"   (then restart zsh)')
    .action(async (shell: string, _options: unknown, command: Command) => run(async () => (await import('./completion.js')).printCompletion(shell, command.parent!)));

  return program;
}
