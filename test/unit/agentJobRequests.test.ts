import { afterAll, describe, expect, it } from 'vitest';
import { ServerRefusal } from '../../src/agent/client.js';
import { jobRunnerHarness, type JobRequest } from '../support/jobRunner.js';

const kinds = (requests: readonly JobRequest[]) => requests.map((r) => (r.kind === 'installed' ? `installed ${r.name}` : r.kind === 'result' ? (r.result.events ? 'result+events' : 'result') : 'events'));

/**
 * What an install job costs the server in requests, and what it must not lose for it: the opening
 * line goes out with the first step's start (one batch the agent waits for before it installs
 * anything), and the last batch goes out with the result.
 */
describe("an install job's requests", () => {
  const harness = jobRunnerHarness();
  afterAll(() => harness.cleanUp());

  it('sends the opening line with the first update\'s start, waits for it before installing, and the last lines with the result', async () => {
    const { requests, installed, lines, result } = await harness.runJob({ updates: ['demo-libssl'] });
    expect(installed).toEqual(['demo-libssl']);
    expect(kinds(requests)).toEqual(['events', 'installed demo-libssl', 'result+events']);
    const first = requests[0]!.kind === 'events' ? requests[0]!.batch : undefined;
    expect(first!.lines.map((l) => l.text)).toEqual([expect.stringMatching(/^job job-\d+: 1 update\(s\) until /)]);
    expect(first!.updates.map((u) => [u.name, u.status])).toEqual([['demo-libssl', 'IN_PROGRESS']]);
    expect(result!.events!.seq).toBe(first!.seq + 1);
    expect(result!.events!.updates.map((u) => [u.name, u.status])).toEqual([['demo-libssl', 'SUCCEEDED']]);
    expect(lines.at(-1)).toMatch(/^agent: job job-\d+ finished; reboot not needed$/);
  });

  it('sends the later updates\' states with the result when they take less than a flush interval: two requests for three updates', async () => {
    const { requests, result } = await harness.runJob({ updates: ['demo-libssl', 'demo-curl', 'demo-zlib'] });
    expect(kinds(requests)).toEqual(['events', 'installed demo-libssl', 'installed demo-curl', 'installed demo-zlib', 'result+events']);
    expect(result!.events!.updates.map((u) => [u.name, u.status])).toEqual([
      ['demo-libssl', 'SUCCEEDED'],
      ['demo-curl', 'SUCCEEDED'],
      ['demo-zlib', 'SUCCEEDED'],
    ]);
  });

  it('installs nothing when the server answers the first batch that the job was withdrawn', async () => {
    const { requests, installed, finished } = await harness.runJob({
      updates: ['demo-libssl', 'demo-curl'],
      answer: (request) => {
        if (request.kind === 'events') throw new ServerRefusal(409, 'CONFLICT', 'This job was withdrawn: its machine run has ended.');
      },
    });
    expect(installed).toEqual([]);
    expect(kinds(requests)).toEqual(['events']);
    expect(finished).toBe('WITHDRAWN');
  });

  it('runs no script when the server answers the first batch that the job was withdrawn', async () => {
    const { requests, result, finished } = await harness.runJob({
      updates: [],
      scripts: [{ index: 0, name: 'start app', phase: 'POST', onFailure: 'CONTINUE', inline: 'exit 0', path: null, interpreter: '/bin/sh', timeoutSeconds: 30 }],
      answer: (request) => {
        if (request.kind === 'events') throw new ServerRefusal(409, 'CONFLICT', 'This job was withdrawn: its machine run has ended.');
      },
    });
    expect(kinds(requests)).toEqual(['events']);
    expect(requests[0]!.kind === 'events' && requests[0]!.batch.lines.map((l) => l.text)).toEqual([expect.stringMatching(/^job job-\d+: 0 update\(s\)/), 'step "start app" (POST): running its inline script with /bin/sh, timeout 30 s']);
    expect(result).toBeUndefined();
    expect(finished).toBe('WITHDRAWN');
  });

  it('a job of POST scripts: two requests, the script\'s start and the result with its output', async () => {
    const { requests, lines, result } = await harness.runJob({
      updates: [],
      scripts: [{ index: 0, name: 'start app', phase: 'POST', onFailure: 'CONTINUE', inline: 'echo started', path: null, interpreter: '/bin/sh', timeoutSeconds: 30 }],
    });
    expect(kinds(requests)).toEqual(['events', 'result+events']);
    expect(result!.steps!.map((s) => [s.name, s.status])).toEqual([['start app', 'SUCCEEDED']]);
    expect(lines).toContain('stdout: started');
    expect(lines).toContain('agent: step "start app": SUCCEEDED');
  });

  it.each([
    [400, 'a server before this protocol', 'BAD_USER_INPUT', 'Unrecognized key: "events"'],
    [413, 'a result and batch over the body limit together', 'PAYLOAD_TOO_LARGE', 'The request body is larger than 8mb.'],
  ])('sends the last batch on its own, then the result, when a result carrying it is refused %i (%s)', async (status, _why, code, message) => {
    const { requests, lines, result } = await harness.runJob({
      updates: ['demo-libssl'],
      answer: (request) => {
        if (request.kind === 'result' && request.result.events) throw new ServerRefusal(status, code, message);
      },
    });
    expect(kinds(requests)).toEqual(['events', 'installed demo-libssl', 'result+events', 'events', 'result']);
    const carried = requests[2]!.kind === 'result' ? requests[2]!.result.events : undefined;
    expect(requests[3]!.kind === 'events' && requests[3]!.batch).toEqual(carried);
    expect(result!.events).toBeUndefined();
    expect(result!.updates.map((u) => [u.name, u.status])).toEqual([['demo-libssl', 'SUCCEEDED']]);
    expect(lines.filter((l) => /finished; reboot not needed$/.test(l))).toHaveLength(2);
  });
});
