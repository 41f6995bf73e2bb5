#!/usr/bin/env node
// Entry point of the standalone agent bundle (dist/agent/fleetpatch-agent.mjs): the same commands
// as `fleetpatch agent`, in one file with no dependencies, for the Node.js a distribution ships.
import { agentCommand } from './cli.js';
import { AgentRefused } from './errors.js';

agentCommand(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof AgentRefused ? `fleetpatch-agent: ${error.message}` : error);
  process.exit(1);
});
