import type { Logger } from '../logger.js';
import { describeExit, type ProcessExit } from './processes.js';

/** A child process of `fleetpatch dev` that can be started again: PostgreSQL, the Temporal dev server. */
export interface SupervisedPart {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  restart(): Promise<void>;
}

export interface SupervisorOptions {
  /** How the part is named to the user: "PostgreSQL". */
  name: string;
  say(line: string): void;
  logger: Logger;
  /** The part cannot be brought back (or was stopped by someone else): stop everything. Called once. */
  giveUp(reason: string): void;
  /** Restart attempts after one crash before giving up (each waits twice as long as the one before). */
  attempts?: number;
  firstDelayMs?: number;
  /** A part that crashed this many times within `crashWindowMs` is crash-looping: give up. */
  maxCrashes?: number;
  crashWindowMs?: number;
}

/**
 * Watches a part of the dev stack: when it dies, says so and starts it again (its data is on disk;
 * the API and the worker reconnect by themselves). A part that exits cleanly was stopped on
 * purpose by someone else, and one that cannot be started again or keeps crashing cannot be
 * helped from here: then the whole stack stops, rather than run half of it without a word.
 * `stop()` before stopping the part itself.
 */
export function supervise(part: SupervisedPart, options: SupervisorOptions): { stop(): void } {
  const { name, say, logger } = options;
  const attempts = options.attempts ?? 4;
  const maxCrashes = options.maxCrashes ?? 5;
  const crashWindowMs = options.crashWindowMs ?? 10 * 60_000;
  let stopped = false;
  let wake: () => void = () => undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const crashes: number[] = [];

  const watch = async () => {
    for (;;) {
      const pid = part.pid;
      const exit = await part.exited;
      if (stopped) return;
      if (exit.code === 0 && exit.signal === null) {
        options.giveUp(`${name} (pid ${pid}) was stopped from outside fleetpatch (exit code 0)`);
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes[0]! < now - crashWindowMs) crashes.shift();
      if (crashes.length > maxCrashes) {
        options.giveUp(`${name} (pid ${pid}) died (${describeExit(exit)}), its ${crashes.length}th crash in ${Math.round(crashWindowMs / 60_000)} minutes`);
        return;
      }
      say(`fleetpatch dev: ${name} (pid ${pid}) died (${describeExit(exit)}); restarting it`);
      logger.warn({ part: name, pid, ...exit }, 'dev stack part died; restarting it');
      let delay = options.firstDelayMs ?? 1000;
      for (let attempt = 1; ; attempt += 1) {
        if (stopped) return;
        try {
          await part.restart();
          say(`fleetpatch dev: ${name} is back (pid ${part.pid})`);
          logger.info({ part: name, pid: part.pid }, 'dev stack part restarted');
          break;
        } catch (error) {
          const reason = (error as Error).message.split('\n')[0];
          if (attempt >= attempts) {
            options.giveUp(`${name} could not be restarted (${attempts} attempts; the last: ${reason})`);
            return;
          }
          say(`fleetpatch dev: restarting ${name} failed (${reason}); trying again in ${delay / 1000} s`);
          await pause(delay);
          delay *= 2;
        }
      }
    }
  };
  void watch().catch((error: unknown) => options.giveUp(`watching ${name} failed: ${String(error)}`));
  return {
    stop() {
      stopped = true;
      wake();
    },
  };
}
