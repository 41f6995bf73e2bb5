import { Command, Option } from 'commander';
import { addAgentCommands } from '../agent/cli.js';
import { addOperatorCommands } from './operator/commands.js';
import { DEFAULT_PROFILE } from '../simulator/syntheticMachine.js';
import type { SimulateOptions } from './simulate.js';
import { version } from '../version.js';

/**
 * Every `fleetpatch` command, its options and its help. Only the definitions live here: each
 * command's code is imported when it runs, so `--help` (and a usage mistake) starts nothing and
 * loads nothing heavy. A new command is one more `.command()` below.
 */
export function buildProgram(): Command {
  const program = new Command('fleetpatch')
    .description('fleetpatch: update management for fleets of Linux and Windows machines')
    .version(version, '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show the help of a command')
    .addHelpText('after', '\nSettings come from the environment: see docs/configuration.md.');

  program
    .command('dev')
    .description('everything on one machine: embedded PostgreSQL, a local Temporal dev server, migrations, the worker, the API and an agent for this machine (what `npm start` runs)')
    .option('--print-env', 'print the variables that point `fleetpatch server` and `fleetpatch worker` at the running dev stack (shell syntax, for eval), and exit')
    .addHelpText(
      'after',
      `
Uses DATABASE_URL and TEMPORAL_ADDRESS instead of starting its own when they are set. Data
(PostgreSQL, Temporal's SQLite file, admin-token) lives in FLEETPATCH_DATA_DIR (./.fleetpatch).
FLEETPATCH_DEV_AGENT=false leaves out the agent for this machine; FLEETPATCH_DEV_WORKER=false
leaves out the worker (run \`fleetpatch worker\` instead).`,
    )
    .action(async (options: { printEnv?: boolean }) => {
      if (options.printEnv) return (await import('./devEnv.js')).printDevEnv();
      return (await import('./dev.js')).dev();
    });

  program
    .command('server')
    .description('the API alone: GraphQL, subscriptions, the agent endpoint, the console (needs DATABASE_URL and TEMPORAL_ADDRESS)')
    .action(async () => (await import('./server.js')).server());

  program
    .command('worker')
    .description('the Temporal worker alone: workflows and activities (needs DATABASE_URL and TEMPORAL_ADDRESS)')
    .action(async () => (await import('./worker.js')).worker());

  program
    .command('migrate')
    .description('apply pending database migrations and exit (needs DATABASE_URL)')
    .action(async () => (await import('./migrate.js')).migrateCommand());

  program
    .command('temporal-cli')
    .description('find the Temporal CLI, building it once with Go if needed; print its path')
    .action(async () => (await import('./temporalCli.js')).temporalCliCommand());

  program
    .command('print-schema')
    .description('print the GraphQL schema (SDL)')
    .action(async () => (await import('./printSchema.js')).printSchema());

  const token = program.command('token').description('create, list and revoke API tokens (needs DATABASE_URL)');
  token
    .command('create')
    .description('create a token and print its secret on stdout, this once (the server keeps only a hash)')
    .addOption(new Option('--role <role>', 'VIEWER, OPERATOR or ADMIN').makeOptionMandatory())
    .option('--name <name>', 'what the token is for (default: "created by <user>@<host>")')
    .option('--expires <when>', '30d, 12h, 90m, an ISO date, or never', 'never')
    .action(async (options: { role: string; name?: string; expires: string }) => (await import('./token.js')).tokenCreate(options));
  token
    .command('list')
    .description('every token without its secret: id, name, role, state, expiry, last use')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => (await import('./token.js')).tokenList(options));
  token
    .command('revoke')
    .description('revoke a token at once: every later request with it is UNAUTHENTICATED')
    .argument('<id>', 'the token id (see `fleetpatch token list`)')
    .action(async (id: string) => (await import('./token.js')).tokenRevoke(id));

  program
    .command('release-key')
    .description('print the release signing key agents pin at enrollment (made if there is none), or rotate it')
    .option('--rotate', 'make a new key, endorsed by the current one (agents follow at their next check-in); restart the API (every replica, with the new file) afterwards')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nThe key is the file FLEETPATCH_RELEASE_KEY_FILE (default <FLEETPATCH_DATA_DIR>/release-key.json), mode 0600.')
    .action(async (options: { rotate?: boolean; json?: boolean }) => (await import('./releaseKey.js')).releaseKeyCommand(options));

  program
    .command('cve-import')
    .description("import CVE fixes of apt machines (the Debian security tracker's JSON, or Ubuntu's and Debian's OSV records) from a URL, a file or a folder, replacing the previous import of the same source (needs DATABASE_URL)")
    .argument('<location>', 'https://security-tracker.debian.org/tracker/data/json, an OSV zip (https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip), a JSON file of OSV records, or a folder of them')
    .addOption(new Option('--format <format>', 'the document\'s format (default: read from the document)').choices(['debian-tracker', 'osv']))
    .action(async (location: string, options: { format?: 'debian-tracker' | 'osv' }) => (await import('./cveImport.js')).cveImportCommand(location, options));

  addAgentCommands(program.command('agent').description('the agent on a managed machine'));

  program
    .command('simulate')
    .description('a fleet of virtual agents in this process, on the real agent protocol (runs until Ctrl-C)')
    .requiredOption('--server <url>', 'the API (http://host:4000 or its /graphql URL)')
    .requiredOption('--enroll-key <key>', 'an enrollment key (createEnrollmentKey)')
    .requiredOption('--machines <n>', 'how many machines')
    .option('--updates <n>', `pending updates per machine on average (${DEFAULT_PROFILE.updatesPerMachine})`)
    .option('--critical-share <f>', `share of CRITICAL updates, 0..1 (${DEFAULT_PROFILE.criticalShare})`)
    .option('--security-share <f>', `share of SECURITY updates, 0..1 (${DEFAULT_PROFILE.securityShare})`)
    .option('--reboot-share <f>', `share of updates that suggest a reboot (${DEFAULT_PROFILE.rebootSuggestedShare})`)
    .option('--install-seconds <s>', `mean install time of one update; 0 is instant (${DEFAULT_PROFILE.installSeconds})`)
    .option('--failure-rate <f>', `chance that one install fails, 0..1 (${DEFAULT_PROFILE.failureRate})`)
    .option('--reboot-seconds <s>', `how long a reboot keeps a machine away (${DEFAULT_PROFILE.rebootSeconds})`)
    .option('--agent-version <v>', `the agent version the machines report until upgradeAgents changes it (${DEFAULT_PROFILE.agentVersion})`)
    .option('--upgrade-seconds <s>', `how long a self-update takes, command to the new agent's check-in (${DEFAULT_PROFILE.upgradeSeconds})`)
    .option('--prefix <name>', 'hostname prefix', 'sim')
    .option('--ramp <n>', 'machines enrolling at the same time', '50')
    .option('--seed <n>', 'same seed, same fleet', '1')
    .action(async (options: SimulateOptions) => (await import('./simulate.js')).simulateCommand(options));

  addOperatorCommands(program);

  return program;
}
