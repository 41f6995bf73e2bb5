// Types of scripts/deploy-tools.mjs, for test/e2e/deploy.test.ts.
export type DeployToolName = 'helm' | 'kubectl-validate' | 'hadolint' | 'check-jsonschema';
export interface DeployTool {
  command: string;
  env: Record<string, string>;
}
export const DEPLOY_TOOLS: Record<DeployToolName, { version: string; go?: string; pip?: string; binary: string }>;
export class DeployToolUnavailable extends Error {}
export function findDeployTool(name: DeployToolName, env?: NodeJS.ProcessEnv): DeployTool | undefined;
export function unavailableReason(name: DeployToolName, env?: NodeJS.ProcessEnv): string | undefined;
export function ensureDeployTool(name: DeployToolName, progress?: (line: string) => void, env?: NodeJS.ProcessEnv): Promise<DeployTool>;
