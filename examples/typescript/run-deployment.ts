// Creates a deployment run on demand only, runs it now and follows the run with graphql-ws until
// it ends; exits 0 when the run SUCCEEDED, 1 otherwise. Plain fetch for queries and mutations
// (Node 20's own), graphql-ws (with the ws package) for the progress subscription.
//
//   FLEETPATCH_SERVER=http://localhost:4000 FLEETPATCH_TOKEN=fp_... npx tsx examples/typescript/run-deployment.ts NAME TAG
//
// An OPERATOR or ADMIN token. NAME is the new deployment's name, TAG the machines' tag it targets
// (Linux machines, critical and security updates).
import process from 'node:process';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const server = (process.env.FLEETPATCH_SERVER ?? '').replace(/\/(graphql)?$/, '');
const token = process.env.FLEETPATCH_TOKEN ?? '';
const [name, tag] = process.argv.slice(2);
if (!server || !token || !name || !tag) {
  process.stderr.write('usage: FLEETPATCH_SERVER=URL FLEETPATCH_TOKEN=TOKEN run-deployment NAME TAG\n');
  process.exit(2);
}
const FINISHED = new Set(['SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED']);

interface GraphQLError {
  message: string;
  extensions?: { code?: string; field?: string };
}

/** One query or mutation over HTTP; the API's errors become an Error with their code and field. */
async function request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${server}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: GraphQLError[] };
  const error = body.errors?.[0];
  if (error) throw new Error(`${error.extensions?.code ?? 'ERROR'}${error.extensions?.field ? ` (field ${error.extensions.field})` : ''}: ${error.message}`);
  return body.data!;
}

interface RunState {
  id: string;
  status: string;
  counts: { total: number; succeeded: number; failed: number };
}
const RUN_FIELDS = 'id status counts { total succeeded failed }';

async function main(): Promise<number> {
  const { createDeployment } = await request<{ createDeployment: { id: string } }>(
    `mutation Create($input: DeploymentInput!) { createDeployment(input: $input) { id } }`,
    { input: { name, osType: 'LINUX', classifications: ['CRITICAL', 'SECURITY'], targetFilter: { tags: [tag] }, onDemandOnly: true } },
  );
  process.stdout.write(`created deployment ${name} (${createDeployment.id})\n`);
  const { runDeploymentNow: run } = await request<{ runDeploymentNow: RunState }>(`mutation Run($id: ID!) { runDeploymentNow(id: $id) { ${RUN_FIELDS} } }`, { id: createDeployment.id });
  process.stdout.write(`started run ${run.id}\n`);

  let timer: NodeJS.Timeout | undefined;
  const ws = createClient({ url: `${server.replace(/^http/, 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } });
  try {
    const final = await new Promise<RunState>((resolve, reject) => {
      const finish = (state: RunState) => FINISHED.has(state.status) && resolve(state);
      ws.subscribe<{ deploymentRunProgress: { kind: string; run: RunState; machineRun: { machineName: string; status: string } | null } }>(
        { query: `subscription Progress($id: ID!) { deploymentRunProgress(runId: $id) { kind run { ${RUN_FIELDS} } machineRun { machineName status } } }`, variables: { id: run.id } },
        {
          next: ({ data, errors }) => {
            if (errors) return reject(new Error(errors.map((e) => e.message).join('; ')));
            const event = data!.deploymentRunProgress;
            if (event.machineRun) process.stdout.write(`${event.machineRun.machineName}: ${event.machineRun.status}\n`);
            finish(event.run);
          },
          error: reject,
          complete: () => undefined,
        },
      );
      // The API does not replay events yet: a run that ended before the subscription reached the
      // server sends nothing more, so the run is also read once the socket is up, and every 5 s.
      const read = () => request<{ deploymentRun: RunState }>(`query Run($id: ID!) { deploymentRun(id: $id) { ${RUN_FIELDS} } }`, { id: run.id }).then(({ deploymentRun }) => finish(deploymentRun), reject);
      ws.on('connected', () => void read());
      timer = setInterval(() => void read(), 5000);
    });
    process.stdout.write(`run ${final.id}: ${final.status} (${final.counts.succeeded} of ${final.counts.total} updates succeeded, ${final.counts.failed} failed)\n`);
    return final.status === 'SUCCEEDED' ? 0 : 1;
  } finally {
    clearInterval(timer);
    await ws.dispose();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`run-deployment: ${error.message}\n`);
    process.exit(1);
  },
);
