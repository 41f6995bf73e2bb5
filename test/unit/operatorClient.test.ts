import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/operator/client.js';
import { CliDeleteDeploymentDocument, CliSystemStatusDocument } from '../../src/cli/operator/graphql.generated.js';

/** The operator commands' GraphQL client against a local API that is away for a moment. */
describe('operator API client', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** An API that answers SERVICE_UNAVAILABLE to its first `unavailable` requests, then data. */
  async function flakyApi(unavailable: number): Promise<{ client: ApiClient; requests: () => number }> {
    let requests = 0;
    const server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        requests++;
        response.setHeader('content-type', 'application/json');
        if (requests <= unavailable) {
          response.end(JSON.stringify({ errors: [{ message: 'Temporal did not answer in time (deadline exceeded). Try again in a few seconds.', extensions: { code: 'SERVICE_UNAVAILABLE' } }], data: null }));
        } else {
          response.end(JSON.stringify({ data: { systemStatus: { version: '9.9.9' }, deleteDeployment: 'd1' } }));
        }
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { client: new ApiClient({ graphqlUrl: `http://127.0.0.1:${port}/graphql`, token: 't' }), requests: () => requests };
  }

  it('asks a read again when the API says it is unavailable for a moment, and answers what the API then says', async () => {
    const api = await flakyApi(1);
    await expect(api.client.request(CliSystemStatusDocument)).resolves.toEqual({ systemStatus: { version: '9.9.9' }, deleteDeployment: 'd1' });
    expect(api.requests()).toBe(2);
  });

  it('does not send a change twice: a mutation answered SERVICE_UNAVAILABLE fails at once with that code', async () => {
    const api = await flakyApi(1);
    await expect(api.client.request(CliDeleteDeploymentDocument, { id: 'd1' })).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(api.requests()).toBe(1);
  });
});
