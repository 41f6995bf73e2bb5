import type { ChildProcess } from 'node:child_process';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether the child is running: spawned (a program that could not be started has no pid) and not exited. */
export function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves when the child has exited (at once if it already has), or could not be started at all. */
export function exitOf(child: ChildProcess): Promise<ProcessExit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // A spawn that failed (ENOENT, EACCES) emits 'error' and may never emit 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
}

export function describeExit(exit: ProcessExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return exit.code === null ? 'could not be started' : `exit code ${exit.code}`;
}

/** True while any process of the group `pgid` is alive (zombies of our own children included). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Gone already.
  }
}

/**
 * Ends what is left of a process group whose leader has exited (PostgreSQL's backends outlive a
 * killed postmaster for a moment): SIGKILL, then waits until none is left, polling, because
 * processes that are not our children send no event when they end.
 */
export async function killGroup(pgid: number, timeoutMs = 10_000): Promise<void> {
  signalGroup(pgid, 'SIGKILL');
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * Sends `signal`, then SIGKILL to the child's whole process group if it has not exited within
 * the grace period. Children started here lead a group of their own (`detached`), so that a
 * terminal's Ctrl-C reaches only fleetpatch, which stops them in order.
 */
export async function stopChild(child: ChildProcess, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!isRunning(child)) return;
  const exited = exitOf(child);
  child.kill(signal);
  const timer = setTimeout(() => (child.pid ? signalGroup(child.pid, 'SIGKILL') : child.kill('SIGKILL')), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Kills the children still running when this process exits, however it exits (an uncaught error,
 * process.exit, a second Ctrl-C): a PostgreSQL or Temporal left behind holds its port and data.
 * Synchronous, as 'exit' listeners must be. Returns the function that forgets the child again.
 */
export function killOnExit(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): () => void {
  const kill = () => {
    if (isRunning(child)) signalGroup(child.pid!, signal);
  };
  process.on('exit', kill);
  return () => process.off('exit', kill);
}
