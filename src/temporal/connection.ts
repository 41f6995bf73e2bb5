import { Client, Connection, defaultGrpcRetryOptions, isGrpcServiceError, makeGrpcRetryInterceptor } from '@temporalio/client';
import { DependencyGate, ServiceUnavailable, unavailableDependency } from '../availability.js';
import { activeTracing } from '../telemetry/tracing.js';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
}

export interface TemporalClient {
  client: Client;
  settings: TemporalSettings;
  /** Whether Temporal answers, as this process last saw it (see DependencyGate). */
  availability: DependencyGate;
  /**
   * Runs Temporal calls for a request: refused at once while Temporal is known to be away, and
   * bounded by CALL_DEADLINE_MS; a failure that says Temporal is away is thrown as
   * ServiceUnavailable (and opens the outage). Every call the API makes on a client's behalf goes
   * through here.
   */
  call<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * The longest a request waits for Temporal. The SDK's default retries of an unavailable frontend
 * add up to about 20 s per call, which is what a mutation took with Temporal down. A Temporal that
 * is away refuses at once (four attempts, about a second); this bounds one that hangs. 5 s was too
 * short for a Temporal dev server on a busy 2-core machine, whose schedule queries and workflow
 * starts sometimes took longer: mutations failed with nothing wrong.
 */
export const CALL_DEADLINE_MS = 10_000;

/**
 * gRPC retries of a call: four attempts over about a second ride out a frontend that restarts or
 * a connection that was just reset; beyond that the caller hears at once that Temporal is away
 * (the SDK's default of ten attempts took 20 s).
 */
const API_RETRY = makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 4 }));

/** gRPC's status codes DEADLINE_EXCEEDED and UNAVAILABLE. */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/** Temporal is away or did not answer in time: UNAVAILABLE or DEADLINE_EXCEEDED, from gRPC. */
export function isTemporalUnavailable(error: unknown): boolean {
  return isGrpcServiceError(error) && (error.code === GRPC_UNAVAILABLE || error.code === GRPC_DEADLINE_EXCEEDED);
}

/** The gRPC error in an error's cause chain (the SDK wraps some of them). */
function grpcErrorIn(error: unknown): { code: number; details: string } | undefined {
  for (let current = error as { cause?: unknown } | undefined, i = 0; i < 8 && current && typeof current === 'object'; i++, current = current.cause as typeof current) {
    if (isGrpcServiceError(current)) return current;
  }
  return undefined;
}

export async function connectTemporal(settings: TemporalSettings): Promise<TemporalClient> {
  const connection = await Connection.connect({ address: settings.address, interceptors: [API_RETRY] });
  // With traces on, a workflow started or signalled carries the caller's trace (docs/observability.md).
  const client = new Client({ connection, namespace: settings.namespace, interceptors: activeTracing()?.temporalClientInterceptors() });
  // Calls still retrying when the connection closes would find it shut at their next attempt, in a
  // timer of the SDK's, where nothing catches the error: close() lets them end first (each is
  // bounded by its deadline).
  const inFlight = new Set<Promise<unknown>>();
  const tracked = <T>(call: Promise<T>): Promise<T> => {
    inFlight.add(call);
    const settled = () => void inFlight.delete(call);
    call.then(settled, settled);
    return call;
  };
  const temporal: TemporalClient = {
    client,
    settings,
    availability: new DependencyGate('TEMPORAL', () => tracked(pingTemporal(temporal, 2000))),
    async call(fn) {
      temporal.availability.check();
      try {
        return await tracked(connection.withDeadline(Date.now() + CALL_DEADLINE_MS, fn));
      } catch (error) {
        if (unavailableDependency(error, [['TEMPORAL', isTemporalUnavailable]]) !== 'TEMPORAL') throw error;
        if (error instanceof ServiceUnavailable) throw error;
        const grpc = grpcErrorIn(error);
        if (grpc?.code === GRPC_DEADLINE_EXCEEDED) {
          // Late, not necessarily away: the gate asks Temporal once before it turns others away.
          await temporal.availability.late(error);
          throw new ServiceUnavailable('TEMPORAL', `Temporal did not answer in time (${grpc.details || 'deadline exceeded'}). Try again in a few seconds.`, { cause: error });
        }
        temporal.availability.failed(error);
        throw new ServiceUnavailable('TEMPORAL', undefined, { cause: error });
      }
    },
    close: async () => {
      temporal.availability.close();
      await Promise.allSettled([...inFlight]);
      return connection.close();
    },
  };
  return temporal;
}

/** Asks the frontend for its system info with a deadline: used by /readyz. */
export async function pingTemporal(temporal: Pick<TemporalClient, 'client'>, timeoutMs = 2000): Promise<void> {
  await temporal.client.connection.withDeadline(Date.now() + timeoutMs, () =>
    temporal.client.workflowService.getSystemInfo({}),
  );
}
