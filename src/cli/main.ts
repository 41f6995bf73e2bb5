import 'reflect-metadata';
import { runCommandLine } from '../commandLine.js';
import { buildProgram } from './program.js';

/**
 * Errors the user can act on: printed as one clear message, without a stack. Loaded once a command
 * has failed: their modules bring the database driver and the dev stack, which an operator command
 * such as `fleetpatch machines list` does not otherwise load (BENCHMARKS.md, the CLI's start).
 */
async function expectedErrors() {
  const [{ ConfigError }, { PortInUseError }, { EmbeddedPostgresError }, { TemporalCliError }, { AgentRefused }, { OperatorError }] = await Promise.all([
    import('../config.js'),
    import('../net.js'),
    import('../devstack/embeddedPostgres.js'),
    import('../devstack/temporalCli.js'),
    import('../agent/errors.js'),
    import('./operator/errors.js'),
  ]);
  return [ConfigError, PortInUseError, TemporalCliError, EmbeddedPostgresError, AgentRefused, OperatorError];
}

await runCommandLine(buildProgram(), process.argv.slice(2), expectedErrors);
