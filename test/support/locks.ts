import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** Holds an fcntl lock on `file` (as apt and dpkg take theirs) from another process until released. */
export async function holdLock(file: string): Promise<() => Promise<void>> {
  const script = 'import fcntl, sys\nf = open(sys.argv[1], "a")\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint("locked", flush=True)\nsys.stdin.read()\n';
  const child = spawn('python3', ['-c', script, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return async () => {
    const exited = once(child, 'exit');
    child.stdin.end();
    await exited;
  };
}
