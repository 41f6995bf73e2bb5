import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dnfHelperScript } from '../../src/agent/backends/dnf/helperScript.js';

// The dnf backend's Python helper is a file of its own (src/agent/backends/dnf/helper.py) that the
// agent runs with dnf's interpreter. What it finds on real dnf machines: test/agent/dnf.test.ts.

const HELPER = fs.readFileSync(new URL('../../src/agent/backends/dnf/helper.py', import.meta.url), 'utf8');
const REPOSITORY = new URL('../..', import.meta.url).pathname;

describe('the dnf helper', () => {
  it('is read from helper.py beside its module, and is Python that compiles', async () => {
    expect(dnfHelperScript()).toBe(HELPER);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-dnf-helper-'));
    try {
      const file = path.join(dir, 'helper.py');
      fs.writeFileSync(file, HELPER);
      // Compiles without running: the helper's main() would wait for a request on stdin.
      await promisify(execFile)('python3', ['-c', 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")', file]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('travels inside the single-file agent bundle, and nothing there reads it from disk', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bundle-'));
    try {
      const outfile = path.join(dir, 'fleetpatch-agent.mjs');
      await promisify(execFile)(process.execPath, ['scripts/bundle-agent.mjs', outfile], { cwd: REPOSITORY });
      const bundle = fs.readFileSync(outfile, 'utf8');
      // esbuild writes the text as a template literal: evaluate it and compare with the file.
      const literal = /function dnfHelperScript\(\) \{\s*return (`[\s\S]*?`);\s*\}/.exec(bundle);
      expect(literal).not.toBeNull();
      expect(new Function(`return ${literal![1]}`)()).toBe(HELPER);
      expect(bundle).not.toMatch(/helper\.py['"], import\.meta\.url/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
