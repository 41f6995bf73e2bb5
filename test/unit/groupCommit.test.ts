import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/api/agent/groupCommit.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));
const options = { maxConcurrentGroups: 2, maxGroupItems: 3, maxGroupBytes: 1000 };

describe('group commit', () => {
  it('stores items that arrive together in one group, at most maxGroupItems at a time, each answered with its own outcome', async () => {
    const groups: number[][] = [];
    const commit = new GroupCommit<number, string>(async (items) => {
      groups.push([...items]);
      return items.map((n) => `stored ${n}`);
    }, options);
    const answers = await Promise.all([1, 2, 3, 4, 5].map((n) => commit.submit(n)));
    expect(answers).toEqual(['stored 1', 'stored 2', 'stored 3', 'stored 4', 'stored 5']);
    expect(groups).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('answers no item before its group is committed', async () => {
    let commitGroup: (() => void) | undefined;
    const commit = new GroupCommit<number, boolean>((items) => new Promise((resolve) => (commitGroup = () => resolve(items.map(() => true)))), options);
    let answered = false;
    const answer = commit.submit(1).then((v) => (answered = v));
    await turn();
    await turn();
    expect(answered).toBe(false);
    commitGroup!();
    await answer;
    expect(answered).toBe(true);
  });

  it('retries a failed group item by item: only the item the database refuses fails', async () => {
    const calls: number[][] = [];
    const commit = new GroupCommit<number, number>(async (items) => {
      calls.push([...items]);
      if (items.includes(2)) throw new Error('value out of range');
      return items.map((n) => n * 10);
    }, options);
    const answers = await Promise.allSettled([1, 2, 3].map((n) => commit.submit(n)));
    expect(answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as Error).message))).toEqual([10, 'value out of range', 30]);
    expect(calls).toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  it('fails every item of a group with the error when the database is away (each agent is told to send again), and stores the next group once it is back', async () => {
    const away = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    let down = true;
    const calls: number[][] = [];
    const commit = new GroupCommit<number, number>(
      async (items) => {
        calls.push([...items]);
        if (down) throw away;
        return [...items];
      },
      options,
      { isUnavailable: (error) => error === away },
    );
    const refused = await Promise.allSettled([1, 2, 3].map((n) => commit.submit(n)));
    expect(refused.map((r) => r.status === 'rejected' && r.reason)).toEqual([away, away, away]);
    expect(calls).toEqual([[1, 2, 3]]);
    down = false;
    expect(await Promise.all([1, 2].map((n) => commit.submit(n)))).toEqual([1, 2]);
  });

  it('stores one copy of items that are the same and answers the copies from it', async () => {
    const stored: string[][] = [];
    const commit = new GroupCommit<{ id: string }, { stored: boolean }>(
      async (items) => {
        stored.push(items.map((i) => i.id));
        return items.map(() => ({ stored: true }));
      },
      options,
      { sameAs: (item) => item.id, copyOutcome: () => ({ stored: false }) },
    );
    const answers = await Promise.all(['a', 'a', 'b'].map((id) => commit.submit({ id })));
    expect(answers).toEqual([{ stored: true }, { stored: false }, { stored: true }]);
    expect(stored).toEqual([['a', 'b']]);
  });

  it('settles every item when the store throws before it awaits anything', async () => {
    const commit = new GroupCommit<number, number>(() => {
      throw new Error('broken');
    }, options);
    const answers = await Promise.allSettled([1, 2].map((n) => commit.submit(n)));
    expect(answers.map((a) => a.status)).toEqual(['rejected', 'rejected']);
  });
});
