/* global process */
/**
 * Preloaded into a `fleetpatch server` process (NODE_OPTIONS=--import) by the tests and benchmarks
 * that measure what it retains: at each SIGUSR2 it collects all garbage (a full collection,
 * through the inspector: no --expose-gc needed) and prints one line to stderr,
 * `heap-probe {"seq":N,"heapUsed":...,"external":...,"rss":...}`, N counting from 1. What is left
 * in the heap then is what the process holds, not what it has not collected yet.
 */
import inspector from 'node:inspector';

const session = new inspector.Session();
session.connect();
const collect = () => new Promise((resolve, reject) => session.post('HeapProfiler.collectGarbage', (error) => (error ? reject(error) : resolve())));
let seq = 0;
process.on('SIGUSR2', async () => {
  // Twice: what a first collection frees (weak references, finalizers) may release more.
  await collect();
  await collect();
  const { heapUsed, external, rss } = process.memoryUsage();
  process.stderr.write(`heap-probe ${JSON.stringify({ seq: ++seq, heapUsed, external, rss })}\n`);
});
