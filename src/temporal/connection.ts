import { Client, Connection } from '@temporalio/client';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
}

export interface TemporalClient {
  client: Client;
  settings: TemporalSettings;
  close(): Promise<void>;
}

export async function connectTemporal(settings: TemporalSettings): Promise<TemporalClient> {
  const connection = await Connection.connect({ address: settings.address });
  const client = new Client({ connection, namespace: settings.namespace });
  return { client, settings, close: () => connection.close() };
}

/** Asks the frontend for its system info with a deadline: used by /readyz. */
export async function pingTemporal(temporal: TemporalClient, timeoutMs = 2000): Promise<void> {
  await temporal.client.connection.withDeadline(Date.now() + timeoutMs, () =>
    temporal.client.workflowService.getSystemInfo({}),
  );
}
