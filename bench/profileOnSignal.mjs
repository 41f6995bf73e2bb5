/* global process, console */
/**
 * Preloaded into the API process by `bench/idleAgents.ts --profile DIR` (NODE_OPTIONS=--import):
 * the first SIGUSR2 starts a CPU profile, the second writes it (and a heap snapshot) to
 * $FLEETPATCH_PROFILE_DIR, so that only the fleet at rest is profiled, not its ramp-up.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const dir = process.env.FLEETPATCH_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  let profiling = false;
  process.on('SIGUSR2', async () => {
    try {
      if (!profiling) {
        profiling = true;
        await post('Profiler.enable');
        await post('Profiler.start');
        return;
      }
      profiling = false;
      const { profile } = await post('Profiler.stop');
      fs.writeFileSync(path.join(dir, `api-${process.pid}.cpuprofile`), JSON.stringify(profile));
      const out = fs.openSync(path.join(dir, `api-${process.pid}.heapsnapshot`), 'w');
      session.on('HeapProfiler.addHeapSnapshotChunk', (m) => fs.writeSync(out, m.params.chunk));
      await post('HeapProfiler.takeHeapSnapshot', null);
      fs.closeSync(out);
      fs.writeFileSync(path.join(dir, 'done'), 'ok');
    } catch (error) {
      console.error('profile failed', error);
    }
  });
}
