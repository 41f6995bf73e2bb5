/** The parts fleetpatch cannot answer without. */
export type Dependency = 'DATABASE' | 'TEMPORAL';

const NAMES: Record<Dependency, string> = { DATABASE: 'PostgreSQL', TEMPORAL: 'Temporal' };

/**
 * A request could not be served because PostgreSQL or Temporal is away. Clients see it as
 * `SERVICE_UNAVAILABLE` (the agent endpoint: HTTP 503 with Retry-After): retry later, nothing is
 * wrong with the request.
 */
export class ServiceUnavailable extends Error {
  override name = 'ServiceUnavailable';
  constructor(
    readonly dependency: Dependency,
    message = `${NAMES[dependency]} is unavailable; fleetpatch reconnects by itself. Try again in a few seconds.`,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The dependency an error says is away (ServiceUnavailable, or a classifier's verdict), anywhere in its cause chain. */
export function unavailableDependency(error: unknown, classifiers: ReadonlyArray<[Dependency, (error: unknown) => boolean]> = []): Dependency | null {
  let current = error as { originalError?: unknown; cause?: unknown } | undefined;
  for (let i = 0; i < 8 && current && typeof current === 'object'; i++) {
    if (current instanceof ServiceUnavailable) return current.dependency;
    for (const [dependency, isUnavailable] of classifiers) if (isUnavailable(current)) return dependency;
    current = (current.originalError ?? current.cause) as typeof current;
  }
  return null;
}

/** Seconds a client is asked to wait before it tries again (Retry-After). */
export const RETRY_AFTER_SECONDS = 5;

export interface Outage {
  since: Date;
  /** What the last failure said, e.g. `connect ECONNREFUSED 127.0.0.1:5432`. */
  reason: string;
}

/**
 * Whether a dependency answers, as this process last saw it. A failure that says it is away (a
 * refused connection, no answer in time) opens an outage; from then on requests are refused at
 * once (`check`) instead of each waiting for its own connection attempt or gRPC retries, while one
 * probe a second looks for the dependency's return and closes the outage when it answers.
 */
export class DependencyGate {
  private current: Outage | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly listeners = new Set<(outage: Outage | null) => void>();

  constructor(
    readonly dependency: Dependency,
    private readonly probe: () => Promise<unknown>,
    private readonly probeIntervalMs = 1000,
  ) {}

  /** The outage in progress, or null while the dependency answers. */
  get outage(): Outage | null {
    return this.current;
  }

  /** Throws ServiceUnavailable while an outage is known. */
  check(): void {
    if (this.current) throw new ServiceUnavailable(this.dependency);
  }

  /**
   * A call that was not answered in time: the dependency may be away, or only slow with this one
   * call (a Temporal schedule query waiting for its workflow). One probe decides; only when it fails
   * too does the outage open, so one slow call does not turn every other request away.
   */
  async late(error: unknown): Promise<void> {
    if (this.closed || this.current) return;
    try {
      await this.probe();
    } catch (probeError) {
      this.failed(probeError ?? error);
    }
  }

  /** A failure that says the dependency is away: opens the outage (once) and starts probing. */
  failed(error: unknown): void {
    if (this.closed || this.current) return;
    this.current = { since: new Date(), reason: describe(error) };
    this.tell();
    this.scheduleProbe();
  }

  /** Called with the outage when one begins and with null when it ends. Returns the function that stops it. */
  onChange(listener: (outage: Outage | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private scheduleProbe(): void {
    this.timer = setTimeout(() => {
      this.probe().then(
        () => {
          if (this.closed) return;
          this.current = null;
          this.tell();
        },
        (error: unknown) => {
          if (this.closed || !this.current) return;
          this.current = { since: this.current.since, reason: describe(error) };
          this.scheduleProbe();
        },
      );
    }, this.probeIntervalMs);
    // A probe never keeps a process alive that has nothing else to do.
    this.timer.unref();
  }

  private tell(): void {
    for (const listener of this.listeners) {
      try {
        listener(this.current);
      } catch {
        // A listener's failure is its own business.
      }
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || String((error as { code?: unknown }).code ?? error.name) : String(error);
}
