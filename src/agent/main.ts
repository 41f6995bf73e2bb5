#!/usr/bin/env node
// Entry point of the standalone agent bundle (dist/agent/fleetpatch-agent.mjs): the same commands
// as `fleetpatch agent`, in one file with no dependencies, for the Node.js a distribution ships.
import { Command } from 'commander';
import { runCommandLine } from '../commandLine.js';
import { version } from '../version.js';
import { addAgentCommands } from './cli.js';
import { AgentRefused } from './errors.js';

const program = new Command('fleetpatch-agent')
  .description('fleetpatch agent: the program on each managed machine')
  .version(version, '-V, --version', 'print the version')
  .helpCommand('help [command]', 'show the help of a command');
addAgentCommands(program);
await runCommandLine(program, process.argv.slice(2), [AgentRefused]);
