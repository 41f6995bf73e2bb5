import { describe, expect, it } from 'vitest';
import { AssessmentIngestQueue } from '../../src/api/agent/assessmentIngestQueue.js';
import type { PreparedReport } from '../../src/db/assessmentIngest.js';

const report = (n: number): PreparedReport => ({ kind: 'RESULT', id: `report-${n}`, machineId: `machine-${n}`, json: '{}', rows: Buffer.alloc(0), kinds: [], counted: [], versions: [], bytes: 100 });
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A store that holds each group until the test lets it finish, and records the groups' sizes. */
function heldStore() {
  const groups: Array<{ size: number; finish: () => void }> = [];
  const store = (reports: readonly PreparedReport[]) =>
    new Promise<Array<{ stored: boolean }>>((resolve) => groups.push({ size: reports.length, finish: () => resolve(reports.map(() => ({ stored: true }))) }));
  return { groups, store };
}

describe('the assessment ingest queue', () => {
  it('stores a report at once when nothing else is being stored', async () => {
    const { groups, store } = heldStore();
    const queue = new AssessmentIngestQueue(store);
    const answer = queue.submit(report(1));
    await turn();
    expect(groups.map((g) => g.size)).toEqual([1]);
    groups[0]!.finish();
    expect(await answer).toEqual({ stored: true });
  });

  it('starts a second group beside one being stored only once as many reports wait as it holds', async () => {
    const { groups, store } = heldStore();
    const queue = new AssessmentIngestQueue(store);
    const answers = [1, 2, 3, 4].map((n) => queue.submit(report(n)));
    await turn();
    expect(groups.map((g) => g.size)).toEqual([4]); // arrived in one turn: one group

    answers.push(...[5, 6, 7].map((n) => queue.submit(report(n))));
    await turn();
    expect(groups.map((g) => g.size)).toEqual([4]); // three wait: fewer than the four being stored

    answers.push(queue.submit(report(8)));
    await turn();
    expect(groups.map((g) => g.size)).toEqual([4, 4]); // four wait: a second group of the same size

    answers.push(queue.submit(report(9)));
    await turn();
    expect(groups).toHaveLength(2); // at most two groups at once
    groups[0]!.finish();
    await turn();
    expect(groups.map((g) => g.size)).toEqual([4, 4]); // one waits beside a group of four being stored
    groups[1]!.finish();
    await turn();
    expect(groups.map((g) => g.size)).toEqual([4, 4, 1]); // nothing being stored: it goes at once
    groups[2]!.finish();
    expect(await Promise.all(answers)).toEqual(Array.from({ length: 9 }, () => ({ stored: true })));
  });

  it('fails a whole group at once when the database is away, instead of retrying its reports one by one', async () => {
    const calls: number[] = [];
    const away = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const refuse = (reports: readonly PreparedReport[]) => {
      calls.push(reports.length);
      return Promise.reject(away);
    };
    const queue = new AssessmentIngestQueue(refuse, undefined, undefined, (error) => error === away);
    const answers = [1, 2, 3].map((n) => queue.submit(report(n)));
    for (const answer of answers) await expect(answer).rejects.toBe(away);
    expect(calls).toEqual([3]);
  });
});
