import fs from 'node:fs';

/**
 * A process the agent started, as it can be recognised later: its id and, where /proc exists, its
 * start time in clock ticks since boot, so that another process that got the same id is not taken
 * for it.
 */
export interface ProcessRecord {
  pid: number;
  startTicks: string | null;
}

/** What is seen of a process id now: null when no process has it. */
export interface ObservedProcess {
  startTicks: string | null;
  /** A zombie: it has exited, its parent has not collected it yet (an orphan's new parent may never). */
  exited: boolean;
}

/**
 * `/proc/<pid>/stat`: the state is the field after the command name, the start time the 22nd
 * field. The command name is in parentheses and may itself hold spaces and parentheses: the
 * fields are counted from the last `)`. Null when the text is not that.
 */
export function parseProcStat(text: string): { state: string; startTicks: string } | null {
  const end = text.lastIndexOf(')');
  if (end < 0) return null;
  const fields = text.slice(end + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  const state = fields[0];
  const startTicks = fields[19];
  if (!state || !startTicks || !/^\d+$/.test(startTicks)) return null;
  return { state, startTicks };
}

function readStat(pid: number): { state: string; startTicks: string } | null | 'NO_PROC' {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && fs.existsSync('/proc/self/stat')) return null;
    return 'NO_PROC';
  }
}

/** The record of a process just started (its start time read at once, where /proc tells it). */
export function recordProcess(pid: number): ProcessRecord {
  const stat = readStat(pid);
  return { pid, startTicks: stat && stat !== 'NO_PROC' ? stat.startTicks : null };
}

/** What is seen of `pid` now. Without /proc (Windows), whether a process has the id at all. */
export function observeProcess(pid: number): ObservedProcess | null {
  const stat = readStat(pid);
  if (stat === null) return null;
  if (stat !== 'NO_PROC') return { startTicks: stat.startTicks, exited: stat.state === 'Z' || stat.state === 'X' };
  try {
    process.kill(pid, 0);
    return { startTicks: null, exited: false };
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? { startTicks: null, exited: false } : null;
  }
}
