import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { activeTracing, currentTraceparent, startTracing, tracingRequested } from '../../src/telemetry/tracing.js';
import { testLogger } from '../support/env.js';

/** The CommonJS modules this process has loaded (the SDK's packages and Temporal's interceptors are CommonJS). */
const loadedPackages = () => Object.keys(createRequire(import.meta.url).cache).filter((file) => /node_modules\/@(opentelemetry|temporalio)\//.test(file));
const SDK_PACKAGES = /@opentelemetry\/(sdk-trace-base|exporter-trace-otlp-http|otlp-transformer|resources|context-async-hooks|core)\/|@temporalio\/interceptors-opentelemetry\//;

describe('traces', () => {
  it('are asked for by an OTLP endpoint, unless the SDK or the traces exporter is turned off', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
  });

  it('off, load nothing of the SDK, the exporter or the Temporal interceptors into the API and the worker', async () => {
    await import('../../src/api/server.js');
    await import('../../src/temporal/worker.js');
    expect(await startTracing('fleetpatch-test', testLogger, {})).toBeUndefined();
    expect(activeTracing()).toBeUndefined();
    expect(currentTraceparent()).toBeNull();
    expect(loadedPackages().filter((file) => SDK_PACKAGES.test(file))).toEqual([]);
    // The probe does see them once they are loaded.
    await import('../../src/telemetry/tracingSdk.js');
    expect(loadedPackages().filter((file) => SDK_PACKAGES.test(file)).length).toBeGreaterThan(0);
  });
});
