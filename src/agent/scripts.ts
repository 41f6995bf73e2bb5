import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { ScriptJobStep } from './protocol.js';

/** After the timeout the script's process group gets SIGTERM, then this long before SIGKILL. */
const KILL_GRACE_MS = 5000;

export interface ScriptOutcome {
  exitCode: number | null;
  /** Why it failed (non-zero exit, killed at its timeout, could not start); null when it succeeded. */
  failure: string | null;
}

/**
 * Runs one script step as this agent's user (root on a managed machine): an inline script is
 * written to a private file first, then `interpreter <file>` runs in its own process group with
 * the run's context in FLEETPATCH_* variables, each output line handed to `onLine` as it comes.
 * At the step's timeout the whole group is stopped (SIGTERM, then SIGKILL) and the step fails.
 */
export async function runScriptStep(
  step: ScriptJobStep,
  options: { workDir: string; env: NodeJS.ProcessEnv; context: Record<string, string>; signal: AbortSignal; onLine: (stream: 'stdout' | 'stderr', text: string) => void },
): Promise<ScriptOutcome> {
  let file = step.path;
  if (step.inline !== null) {
    const dir = path.join(options.workDir, 'steps');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    file = path.join(dir, `step-${step.index}`);
    fs.writeFileSync(file, step.inline, { mode: 0o700 });
  }
  const env: NodeJS.ProcessEnv = { ...options.env, ...options.context, FLEETPATCH_STEP_NAME: step.name, FLEETPATCH_STEP_PHASE: step.phase };
  return new Promise<ScriptOutcome>((resolve) => {
    let settled = false;
    const done = (outcome: ScriptOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killer);
      options.signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const child = spawn(step.interpreter, [file!], { cwd: '/', env, detached: process.platform !== 'win32', stdio: ['ignore', 'pipe', 'pipe'] });
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const stop = () => {
      const kill = (sig: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, sig);
          else child.kill(sig);
        } catch {
          // Already gone.
        }
      };
      kill('SIGTERM');
      killer = setTimeout(() => kill('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, step.timeoutSeconds * 1000);
    const onAbort = () => stop();
    options.signal.addEventListener('abort', onAbort);
    const streams: Array<Promise<void>> = [];
    for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (text) => options.onLine(name, text));
      streams.push(new Promise((r) => lines.once('close', () => r())));
    }
    child.once('error', (error) => done({ exitCode: null, failure: `could not start ${step.interpreter}: ${error.message}` }));
    child.once('close', (code, signal) => {
      void Promise.all(streams).then(() => {
        if (timedOut) return done({ exitCode: code, failure: `stopped at its timeout of ${step.timeoutSeconds} s` });
        if (options.signal.aborted) return done({ exitCode: code, failure: 'the agent stopped while it ran' });
        if (code === 0) return done({ exitCode: 0, failure: null });
        done({ exitCode: code, failure: code === null ? `ended by signal ${signal ?? 'unknown'}` : `exited with code ${code}` });
      });
    });
  });
}
