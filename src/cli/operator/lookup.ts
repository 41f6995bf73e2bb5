import type { ApiClient } from './client.js';
import { OperatorError } from './errors.js';
import { CliDeploymentDocument, CliDeploymentsDocument, CliDeploymentSpecsDocument, CliMachinesNamedDocument, type CliDeploymentFragment, type CliDeploymentRolloutFragment } from './graphql.generated.js';
import type { StoredDeployment } from './deploymentSpec.js';
import { isUuid } from './options.js';

/**
 * Commands take a machine or a deployment by id or by name, as the operator knows it. Names are
 * matched whole, ignoring case for machines (hostnames) and exactly for deployments (unique names).
 */

export async function machineIdOf(client: ApiClient, ref: string): Promise<string> {
  if (isUuid(ref)) return ref.toLowerCase();
  const wanted = ref.trim().toLowerCase();
  const matches: Array<{ id: string; name: string; osType: string; lastSeenAt: string | null }> = [];
  let after: string | undefined;
  for (;;) {
    const { machines } = await client.request(CliMachinesNamedDocument, { name: ref.trim(), after });
    matches.push(...machines.edges.map((e) => e.node).filter((m) => m.name.toLowerCase() === wanted));
    if (!machines.pageInfo.hasNextPage || !machines.pageInfo.endCursor) break;
    after = machines.pageInfo.endCursor;
  }
  if (matches.length === 0) throw new OperatorError(`No machine named "${ref}" (see \`fleetpatch machines list --name ${ref}\`).`, { code: 'NOT_FOUND' });
  if (matches.length > 1) {
    const list = matches.map((m) => `  ${m.id}  ${m.osType}  last seen ${m.lastSeenAt ?? 'never'}`).join('\n');
    throw new OperatorError(`${matches.length} machines are named "${ref}"; give one by id:\n${list}`, { code: 'CONFLICT' });
  }
  return matches[0]!.id;
}

/** Every deployment, following the pages. */
export async function allDeployments(client: ApiClient): Promise<CliDeploymentFragment[]> {
  const all: CliDeploymentFragment[] = [];
  let after: string | undefined;
  for (;;) {
    const { deployments } = await client.request(CliDeploymentsDocument, { first: 500, after });
    all.push(...deployments.edges.map((e) => e.node));
    if (!deployments.pageInfo.hasNextPage || !deployments.pageInfo.endCursor) return all;
    after = deployments.pageInfo.endCursor;
  }
}

/** Every deployment's stored fields (what deployments as code compares), following the pages; asks nothing of Temporal. */
export async function allDeploymentSpecs(client: ApiClient): Promise<StoredDeployment[]> {
  const all: StoredDeployment[] = [];
  let after: string | undefined;
  for (;;) {
    const { deployments } = await client.request(CliDeploymentSpecsDocument, { after });
    all.push(...deployments.edges.map((e) => e.node));
    if (!deployments.pageInfo.hasNextPage || !deployments.pageInfo.endCursor) return all;
    after = deployments.pageInfo.endCursor;
  }
}

/** A deployment by id or name, with its rings and steps (read by id: the list does not carry them). */
export async function findDeployment(client: ApiClient, ref: string): Promise<(CliDeploymentFragment & CliDeploymentRolloutFragment) | null> {
  if (isUuid(ref)) {
    const { deployment } = await client.request(CliDeploymentDocument, { id: ref });
    if (deployment) return deployment;
  }
  const byName = (await allDeployments(client)).find((d) => d.name === ref.trim());
  return byName ? ((await client.request(CliDeploymentDocument, { id: byName.id })).deployment ?? null) : null;
}

export async function deploymentOf(client: ApiClient, ref: string): Promise<CliDeploymentFragment & CliDeploymentRolloutFragment> {
  const found = await findDeployment(client, ref);
  if (!found) throw new OperatorError(`No deployment named "${ref}" (see \`fleetpatch deployments list\`).`, { code: 'NOT_FOUND' });
  return found;
}
