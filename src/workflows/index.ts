// Every workflow the worker registers. Workflow code runs in Temporal's deterministic sandbox:
// no Node built-ins, no I/O, no clocks but Temporal's (lint enforces the first).
export { selfCheckWorkflow } from './selfCheck.js';
export { deploymentRunWorkflow } from './deploymentRun.js';
export { machineRunWorkflow } from './machineRun.js';
export { agentUpgradeWorkflow } from './agentUpgrade.js';
export { complianceSnapshotWorkflow } from './complianceSnapshot.js';
