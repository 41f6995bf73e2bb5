export interface GroupCommitOptions {
  /** Groups being stored at once (each holds a database connection). */
  maxConcurrentGroups: number;
  /** Largest group, in items. */
  maxGroupItems: number;
  /** Largest group, in bytes as `bytes` counts them (bounds a statement's parameter). */
  maxGroupBytes: number;
}

/** Stores a group of items in one transaction and answers each item's outcome, in the group's order. */
export type StoreItems<T, R> = (items: readonly T[]) => Promise<R[]>;

export interface GroupEvent {
  items: number;
  /** The group failed as a whole and its items were stored one by one. */
  retriedAlone: boolean;
  error?: unknown;
}

export interface GroupCommitRules<T, R> {
  /** An item's size toward maxGroupBytes (default 0: only maxGroupItems bounds a group). */
  bytes?: (item: T) => number;
  /**
   * Items that are one and the same (a report sent twice): only the first of a group is stored,
   * and each later copy answers `copyOutcome` of the first's outcome. Default: none are.
   */
  sameAs?: (item: T) => string | undefined;
  copyOutcome?: (first: R) => R;
  /** Told of every group stored, and of every group that failed. */
  onGroup?: (event: GroupEvent) => void;
  /** An error that says the database is away: retrying the group's items one by one would only meet it again. */
  isUnavailable?: (error: unknown) => boolean;
}

interface Waiting<T, R> {
  item: T;
  resolve: (outcome: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit. An item is stored at once when the database is free; items that arrive while a
 * group is being stored wait and go together in the next group: one transaction, one commit for all
 * of them. Under light load nothing waits (a group of one); under a fleet reporting at once, the
 * commits per item fall with the load.
 *
 * Each item's promise settles only after its group is committed (or has failed): whoever answers an
 * agent from it answers only once the agent's report is durable. A group that fails is retried item
 * by item, so one item PostgreSQL refuses fails alone; a group that fails because the database is
 * away fails every item at once with that error (the caller answers 503 and the agent sends again).
 * Every item's promise settles, whatever the store does.
 */
export class GroupCommit<T, R> {
  private waiting: Array<Waiting<T, R>> = [];
  private readonly storing = new Set<Array<Waiting<T, R>>>();
  private scheduled = false;

  constructor(
    private readonly store: StoreItems<T, R>,
    private readonly options: GroupCommitOptions,
    private readonly rules: GroupCommitRules<T, R> = {},
  ) {}

  /** Resolves with the item's outcome once its group is committed; rejects if it could not be stored. */
  submit(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Forms groups on the next turn of the event loop, not at once: the requests whose bodies were
   * read in the same turn go together, at no cost in latency.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /**
   * Starts a group when none is being stored, and another beside it only once as many items wait
   * as the smallest group being stored holds: PostgreSQL stores one group while the next is
   * prepared, without the groups shrinking under load (two groups at once halved their size and
   * cost more CPU per item than they saved in waiting).
   */
  private pump(): void {
    while (this.storing.size < this.options.maxConcurrentGroups && this.waiting.length >= this.smallestStoring()) {
      const group = this.takeGroup();
      this.storing.add(group);
      void this.storeGroup(group).finally(() => {
        this.storing.delete(group);
        this.pump();
      });
    }
  }

  /** How many items the smallest group being stored holds; 1 when none is (an item waiting is enough). */
  private smallestStoring(): number {
    let smallest = Infinity;
    for (const group of this.storing) smallest = Math.min(smallest, group.length);
    return smallest === Infinity ? 1 : smallest;
  }

  private takeGroup(): Array<Waiting<T, R>> {
    const bytesOf = this.rules.bytes ?? (() => 0);
    let bytes = 0;
    let n = 0;
    while (n < this.waiting.length && n < this.options.maxGroupItems) {
      bytes += bytesOf(this.waiting[n]!.item);
      if (n > 0 && bytes > this.options.maxGroupBytes) break;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  private async storeGroup(group: Array<Waiting<T, R>>): Promise<void> {
    // The first copy of each item is stored; later copies follow its outcome.
    const sameAs = this.rules.sameAs ?? (() => undefined);
    const firsts: Array<Waiting<T, R>> = [];
    const copies = new Map<string, Array<Waiting<T, R>>>();
    for (const entry of group) {
      const key = sameAs(entry.item);
      const seen = key === undefined ? undefined : copies.get(key);
      if (seen) seen.push(entry);
      else {
        firsts.push(entry);
        if (key !== undefined) copies.set(key, []);
      }
    }
    const settle = (entry: Waiting<T, R>, outcome: PromiseSettledResult<R>) => {
      const key = sameAs(entry.item);
      const later = key === undefined ? [] : (copies.get(key) ?? []);
      if (outcome.status === 'fulfilled') {
        entry.resolve(outcome.value);
        for (const copy of later) copy.resolve(this.rules.copyOutcome ? this.rules.copyOutcome(outcome.value) : outcome.value);
      } else {
        entry.reject(outcome.reason);
        for (const copy of later) copy.reject(outcome.reason);
      }
    };
    const onGroup = this.rules.onGroup ?? (() => undefined);
    try {
      const outcomes = await this.store(firsts.map((e) => e.item));
      firsts.forEach((entry, i) => settle(entry, { status: 'fulfilled', value: outcomes[i]! }));
      onGroup({ items: group.length, retriedAlone: false });
    } catch (error) {
      if (firsts.length === 1 || this.rules.isUnavailable?.(error)) {
        for (const entry of firsts) settle(entry, { status: 'rejected', reason: error });
        onGroup({ items: group.length, retriedAlone: false, error });
        return;
      }
      // Nothing of the group was stored: each item on its own, so that only the bad one fails.
      onGroup({ items: group.length, retriedAlone: true, error });
      for (const entry of firsts) {
        const outcome = await Promise.resolve([entry.item])
          .then((alone) => this.store(alone))
          .then(
          ([value]) => ({ status: 'fulfilled' as const, value: value! }),
          (reason: unknown) => ({ status: 'rejected' as const, reason }),
        );
        settle(entry, outcome);
      }
    }
  }
}
