import type { Events, FleetPubSub } from '../../events/pubsub.js';

/**
 * How long a machine credential, once checked against the database, is trusted on this process
 * without asking again, at the default 60 s check-in interval (AgentService passes
 * trustAfterCheckInMs of the configured one). Every check-in checks it in the database (and renews
 * or drops the entry), so an idle agent's polls between its check-ins need no look-up of their
 * own: a little longer than the check-in interval. Only requests that hand out nothing and store
 * nothing go by it (a long-poll of a machine known to be quiet): whatever hands out a command or
 * stores a report judges the credential in the database first (AgentService.authenticateInDatabase).
 * So what a lost notification can cost is an empty poll answer until the agent's next check-in.
 */
export const CREDENTIAL_TRUST_MS = 90_000;

/**
 * How long an API process trusts what a check-in told it (the credential, and that the machine's
 * queue was empty) at a given check-in interval: one and a half intervals, so that the agent's
 * next check-in renews it before it lapses (the agent checks in about one interval later: the
 * simulator spreads its own over 0.75 to 1.25), and never less than the 90 s made for the default
 * 60 s. A fixed 90 s at longer intervals made every poll after it cost three statements (its
 * credential looked up, then judged, then its queue looked at) until the next check-in: at 300 s,
 * more statements per agent than at 60 s (BENCHMARKS.md, "50,000 idle agents at rest").
 */
export function trustAfterCheckInMs(checkInSeconds: number): number {
  return Math.max(CREDENTIAL_TRUST_MS, checkInSeconds * 1500);
}

/** Beyond this many machines the oldest entries are dropped (they are simply looked up again). */
const MAX_ENTRIES = 200_000;

/**
 * Machine credentials this API process has recently checked: SHA-256 of the credential → machine
 * id. Every agent request used to look its credential up in the database; at rest an agent makes
 * two requests a minute, so 10,000 agents cost 330 queries a second for answers that almost never
 * change. A credential stops being valid only when its machine is removed (`removeMachine` clears
 * the hash) or an enrollment sent again replaces it, which publish `machineChanged` with `removed`
 * or `credentialReplaced`:
 *  - on the process that removed it, the entry is dropped inside `publish`, before the mutation
 *    answers;
 *  - on every other replica, when the event arrives through Postgres NOTIFY (milliseconds);
 *  - if that notification is lost (the LISTEN connection dropped), the whole cache is dropped when
 *    the LISTEN is back, and no entry outlives `CREDENTIAL_TRUST_MS` anyway;
 *  - a check-in is judged by the database, never by this cache (`confirm` or `refuse` follow its
 *    answer), and a machine has one credential: the entry of the one it held before is dropped as
 *    soon as its new one is confirmed, on this process, however the replacement was missed.
 * Other changes to a machine (a report, new facts) keep its entry: a fleet's reports used to drop
 * them all, and each agent's next request cost a query (BENCHMARKS.md, "Ingest, third pass").
 */
export class MachineCredentialCache {
  private readonly machines = new Map<string, { machineId: string; until: number }>();
  /** machine id → its credential hash (a machine has one credential). */
  private readonly hashes = new Map<string, string>();
  /** Bumped by every forget: a look-up that was running meanwhile must not store its answer. */
  #generation = 0;

  constructor(
    readonly trustMs = CREDENTIAL_TRUST_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The machine id for a credential hash, if it was checked within the trust time. */
  machineOf(credentialHash: string): string | undefined {
    const entry = this.machines.get(credentialHash);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.drop(credentialHash, entry.machineId);
      return undefined;
    }
    return entry.machineId;
  }

  /**
   * Looks the credential up with `find` unless it is cached, and caches a valid answer, unless a
   * machine was forgotten while `find` ran (it may have read the row just before a removal).
   */
  async resolve(credentialHash: string, find: () => Promise<string | undefined>): Promise<string | undefined> {
    const cached = this.machineOf(credentialHash);
    if (cached) return cached;
    const generation = this.generation;
    const machineId = await find();
    if (machineId) this.confirm(credentialHash, machineId, generation);
    return machineId;
  }

  /** Counts forgets: take it before asking the database, and hand it to `confirm` with the answer. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * The database said the machine holds this credential (as of a statement started at
   * `generation`): trusted from now, unless a machine was forgotten meanwhile. A credential of the
   * machine cached before is dropped: it is no longer the machine's.
   */
  confirm(credentialHash: string, machineId: string, generation: number): void {
    if (generation !== this.#generation) return;
    const previous = this.hashes.get(machineId);
    if (previous !== undefined && previous !== credentialHash) this.drop(previous, machineId);
    this.machines.delete(credentialHash);
    if (this.machines.size >= MAX_ENTRIES) {
      const [oldest, entry] = this.machines.entries().next().value!;
      this.drop(oldest, entry.machineId);
    }
    this.machines.set(credentialHash, { machineId, until: this.now() + this.trustMs });
    this.hashes.set(machineId, credentialHash);
  }

  /** The database said no live machine holds this credential: it is refused from now on. */
  refuse(credentialHash: string): void {
    const entry = this.machines.get(credentialHash);
    if (entry) this.forgetMachine(entry.machineId);
  }

  forgetMachine(machineId: string): void {
    this.#generation++;
    const hash = this.hashes.get(machineId);
    if (hash !== undefined) this.drop(hash, machineId);
  }

  private drop(credentialHash: string, machineId: string): void {
    this.machines.delete(credentialHash);
    if (this.hashes.get(machineId) === credentialHash) this.hashes.delete(machineId);
  }

  forgetAll(): void {
    this.#generation++;
    this.machines.clear();
    this.hashes.clear();
  }

  get size(): number {
    return this.machines.size;
  }

  /** A credential just issued (an enrollment): its first request needs no look-up. */
  remember(credentialHash: string, machineId: string): void {
    void this.resolve(credentialHash, () => Promise.resolve(machineId));
  }

  /** Keeps the cache in step with the removals and replaced credentials (`machineChanged`) of this process and every other. */
  follow(pubsub: FleetPubSub): () => void {
    const changed = (topic: string, detail: unknown) => {
      const event = detail as Events['machineChanged'][0];
      if (topic !== 'machineChanged' || !('machineId' in event)) return;
      if (event.removed || event.credentialReplaced) this.forgetMachine(event.machineId);
    };
    return pubsub.observe({ published: changed, delivered: changed, listening: () => this.forgetAll() });
  }
}
