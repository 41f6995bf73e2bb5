import 'reflect-metadata';
import { runCommandLine } from '../commandLine.js';
import { ConfigError } from '../config.js';
import { PortInUseError } from '../net.js';
import { EmbeddedPostgresError } from '../devstack/embeddedPostgres.js';
import { TemporalCliError } from '../devstack/temporalCli.js';
import { AgentRefused } from '../agent/errors.js';
import { buildProgram } from './program.js';
import { OperatorError } from './operator/errors.js';

/** Errors the user can act on: printed as one clear message, without a stack. */
const EXPECTED_ERRORS = [ConfigError, PortInUseError, TemporalCliError, EmbeddedPostgresError, AgentRefused, OperatorError];

await runCommandLine(buildProgram(), process.argv.slice(2), EXPECTED_ERRORS);
