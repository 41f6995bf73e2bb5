import { describe, expect, it } from 'vitest';
import { LongPolls, type ParkedPoll, type PollEnd, type SetTimer } from '../../src/api/agent/longPolls.js';

/** A clock and timers the test moves by hand. */
function manualTime() {
  let now = 0;
  const timers = new Set<{ at: number; fire: () => void }>();
  const setTimer: SetTimer = (fire, ms) => {
    const timer = { at: now + ms, fire };
    timers.add(timer);
    return { cancel: () => timers.delete(timer) };
  };
  return {
    now: () => now,
    setTimer,
    timers,
    /** Moves the clock to `to`, firing every timer due on the way, in order. */
    advance(to: number) {
      for (;;) {
        const due = [...timers].filter((t) => t.at <= to).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        now = due.at;
        timers.delete(due);
        due.fire();
      }
      now = to;
    },
  };
}

function registry(options: { quietTrustMs?: number } = {}) {
  const time = manualTime();
  const ended: Array<[string, PollEnd]> = [];
  const polls = new LongPolls<string>((poll, end) => ended.push([poll.client, end]), { ...options, now: time.now, setTimer: time.setTimer });
  return { polls, time, ended };
}

describe('the parked long-polls', () => {
  it('wakes every poll of the machine once, and only that machine', () => {
    const { polls, ended } = registry();
    polls.park('m1', 25_000, 'm1 first', false);
    polls.park('m1', 25_000, 'm1 second', false);
    polls.park('m2', 25_000, 'm2', false);
    polls.wake('m1');
    polls.wake('m1');
    expect(ended).toEqual([
      ['m1 first', 'WOKEN'],
      ['m1 second', 'WOKEN'],
    ]);
    expect(polls.size).toBe(1);
  });

  it('times each poll out after its own wait, in order, with one timer per wait time', () => {
    const { polls, time, ended } = registry();
    polls.park('m1', 25_000, 'a', false);
    time.advance(1_000);
    polls.park('m2', 25_000, 'b', false);
    polls.park('m3', 5_000, 'c', false);
    polls.park('m4', 5_000, 'd', false);
    expect(time.timers.size).toBe(2);
    time.advance(5_999);
    expect(ended).toEqual([]);
    time.advance(6_000);
    expect(ended).toEqual([
      ['c', 'TIMED_OUT'],
      ['d', 'TIMED_OUT'],
    ]);
    time.advance(25_000);
    expect(ended.at(-1)).toEqual(['a', 'TIMED_OUT']);
    time.advance(26_000);
    expect(ended.at(-1)).toEqual(['b', 'TIMED_OUT']);
    expect(polls.size).toBe(0);
    expect(time.timers.size).toBe(0);
  });

  it('holds nothing for a dropped poll (its agent went away), and its timer moves on to the next', () => {
    const { polls, time, ended } = registry();
    const first = polls.park('m1', 25_000, 'gone', false);
    time.advance(1_000);
    polls.park('m2', 25_000, 'stays', false);
    polls.drop(first);
    polls.wake('m1');
    time.advance(25_000);
    expect(ended).toEqual([]);
    time.advance(26_000);
    expect(ended).toEqual([['stays', 'TIMED_OUT']]);
    const alone = polls.park('m3', 25_000, 'alone', false);
    polls.drop(alone);
    expect(polls.size).toBe(0);
    expect(time.timers.size).toBe(0);
  });

  it('holds what ends a poll during its first look until the look is done, and drops it when the look answered', () => {
    const { polls, time, ended } = registry();
    const woken = polls.park('m1', 25_000, 'woken while looking', true);
    polls.wake('m1');
    expect(ended).toEqual([]);
    polls.looked(woken, 0);
    expect(ended).toEqual([['woken while looking', 'WOKEN']]);

    const timedOut = polls.park('m2', 1, 'timed out while looking', true);
    time.advance(10);
    expect(ended).toHaveLength(1);
    polls.looked(timedOut, 0);
    expect(ended.at(-1)).toEqual(['timed out while looking', 'TIMED_OUT']);

    // The look found commands: the caller answers them; a wake meanwhile must not answer twice.
    const answered = polls.park('m3', 25_000, 'answered by its look', true);
    polls.wake('m3');
    polls.drop(answered);
    const waits: ParkedPoll<string> = polls.park('m4', 25_000, 'waits after its look', true);
    polls.looked(waits, 0);
    time.advance(100_000);
    expect(ended.slice(2)).toEqual([['waits after its look', 'TIMED_OUT']]);
  });

  it('knows a machine is quiet until a command is queued for it, and for at most the trust time', () => {
    const { polls, time } = registry({ quietTrustMs: 60_000 });
    expect(polls.isQuiet('m1')).toBe(false);
    polls.markQuiet('m1', 0);
    time.advance(59_999);
    expect(polls.isQuiet('m1')).toBe(true);
    time.advance(60_000);
    expect(polls.isQuiet('m1')).toBe(false);
    polls.markQuiet('m1', 60_000);
    polls.wake('m1');
    expect(polls.isQuiet('m1')).toBe(false);
  });

  it('ends a quiet mark when a check-in finds something waiting (a command due again), without waking a poll', () => {
    const { polls, ended } = registry({ quietTrustMs: 450_000 });
    polls.markQuiet('m1', 0);
    polls.park('m1', 25_000, 'parked', false);
    polls.notQuiet('m1');
    expect(polls.isQuiet('m1')).toBe(false);
    expect(ended).toEqual([]);
  });

  it("trusts a check-in's look at an empty queue only when no command was queued, for any machine, and the LISTEN did not restart while it ran", () => {
    const { polls, time } = registry({ quietTrustMs: 90_000 });
    let events: Parameters<Parameters<LongPolls<string>['follow']>[0]['observe']>[0] | undefined;
    polls.follow({ observe: (o: typeof events) => ((events = o), () => undefined) } as never);

    const look = polls.lookStarts();
    time.advance(5);
    expect(polls.lookedEmpty('m1', look)).toBe(true);
    expect(polls.isQuiet('m1')).toBe(true);
    // Counted from when the look began, not when its answer came.
    time.advance(90_000);
    expect(polls.isQuiet('m1')).toBe(false);

    // A command for this machine queued while the look ran: its event came before the answer.
    const racing = polls.lookStarts();
    events!.delivered!('agentCommandQueued:m2', { commandId: 'c1' });
    expect(polls.lookedEmpty('m2', racing)).toBe(false);
    expect(polls.isQuiet('m2')).toBe(false);

    // The LISTEN restarted while the look ran: events may have been lost.
    const lost = polls.lookStarts();
    events!.listening!();
    expect(polls.lookedEmpty('m3', lost)).toBe(false);
    expect(polls.isQuiet('m3')).toBe(false);
  });
});
