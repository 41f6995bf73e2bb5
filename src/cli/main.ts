import 'reflect-metadata';
import { ConfigError } from '../config.js';
import { PortInUseError } from '../net.js';
import { TemporalCliError } from '../devstack/temporalCli.js';
import { AgentRefused } from '../agent/errors.js';

const USAGE = `fleetpatch: update management for fleets of Linux and Windows machines

Usage: fleetpatch <command>

  dev            everything on one machine: embedded PostgreSQL, a local Temporal dev server,
                 migrations, the worker and the API (what \`npm start\` runs)
  server         the API alone (needs DATABASE_URL and TEMPORAL_ADDRESS)
  worker         the Temporal worker alone (needs DATABASE_URL and TEMPORAL_ADDRESS)
  migrate        apply pending database migrations (needs DATABASE_URL)
  temporal-cli   find the Temporal CLI, building it once with Go if needed; print its path
  print-schema   print the GraphQL schema (SDL)
  token          create, list and revoke API tokens (needs DATABASE_URL; \`fleetpatch token --help\`)
  agent          the agent on a managed machine (\`fleetpatch agent --help\`)

Settings come from the environment: see the README's configuration table.`;

type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, () => Promise<Command>> = {
  dev: async () => (await import('./dev.js')).dev,
  server: async () => (await import('./server.js')).server,
  worker: async () => (await import('./worker.js')).worker,
  migrate: async () => (await import('./migrate.js')).migrateCommand,
  'temporal-cli': async () => (await import('./temporalCli.js')).temporalCliCommand,
  'print-schema': async () => (await import('./printSchema.js')).printSchema,
  agent: async () => (await import('../agent/cli.js')).agentCommand,
  token: async () => (await import('./token.js')).tokenCommand,
  simulate: async () => (await import('./simulate.js')).simulateCommand,
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return;
  }
  const load = commands[name];
  if (!load) {
    console.error(`Unknown command "${name}".\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  await (await load())(rest);
}

/** Errors the user can act on are printed as one clear message, without a stack. */
const EXPECTED_ERRORS = [ConfigError, PortInUseError, TemporalCliError, AgentRefused];

main(process.argv.slice(2)).catch((error: unknown) => {
  if (EXPECTED_ERRORS.some((type) => error instanceof type)) {
    console.error(`fleetpatch: ${(error as Error).message}`);
  } else {
    console.error('fleetpatch: failed:', error);
  }
  process.exit(1);
});
