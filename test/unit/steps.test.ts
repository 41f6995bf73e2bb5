import { describe, expect, it } from 'vitest';
import { validateDeploymentInput, type DeploymentInput } from '../../src/fleet/deploymentInput.js';
import { gateDecision } from '../../src/fleet/rollout.js';
import {
  SCRIPT_MAX_BYTES,
  callBody,
  callsOnly,
  preScriptsOnly,
  withPostScripts,
  phaseVerdict,
  scriptsUnsupported,
  statusExpected,
  stepPhases,
  stepsOf,
  validateSteps,
  type StepInput,
  type StepResult,
} from '../../src/fleet/steps.js';

const secrets = new Set(['LB_TOKEN']);
const check = (steps: StepInput[], windowMinutes = 60) => validateSteps(steps, { windowMinutes, secretNames: secrets });
const refusal = (steps: StepInput[], windowMinutes = 60) => {
  const r = check(steps, windowMinutes);
  if (r.ok) throw new Error('accepted');
  return r;
};

describe('validateSteps: what an operator may enter', () => {
  it('fills in names, interpreter, timeouts, method and failure actions', () => {
    const r = check([{ phase: 'PRE', script: { inline: 'systemctl stop app' } }, { phase: 'POST', http: { url: 'https://lb.example/drain', headers: [{ name: 'Authorization', secret: 'LB_TOKEN' }] } }]);
    expect(r).toEqual({
      ok: true,
      value: [
        { name: 'Step 1', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: { inline: 'systemctl stop app', path: null, interpreter: '/bin/sh', timeoutSeconds: 300 }, http: null },
        {
          name: 'Step 2',
          phase: 'POST',
          onFailure: 'FAIL_MACHINE',
          script: null,
          http: { method: 'POST', url: 'https://lb.example/drain', headers: [{ name: 'Authorization', value: null, secret: 'LB_TOKEN' }], body: null, expectedStatus: [], timeoutSeconds: 30, retries: 0 },
        },
      ],
    });
  });

  it.each<[string, StepInput[], string, RegExp, number?]>([
    ['a URL that is not http(s)', [{ phase: 'PRE', http: { url: 'ftp://x.example/a' } }], 'steps[0].http.url', /http or https/],
    ['a URL with credentials', [{ phase: 'PRE', http: { url: 'https://u:p@x.example/a' } }], 'steps[0].http.url', /credentials/],
    ['an unknown secret', [{ phase: 'PRE', http: { url: 'https://x.example', headers: [{ name: 'X-Key', secret: 'NOPE' }] } }], 'steps[0].http.headers[0].secret', /not a secret this server has/],
    ['a script timeout above the window', [{ phase: 'PRE', script: { inline: 'true', timeoutSeconds: 3601 } }], 'steps[0].script.timeoutSeconds', /at most 3600 s \(the maintenance window\)/],
    ['a script larger than the limit', [{ phase: 'PRE', script: { inline: 'x'.repeat(SCRIPT_MAX_BYTES + 1) } }], 'steps[0].script.inline', /at most 65536/],
    ['a relative path', [{ phase: 'PRE', script: { path: 'drain.sh' } }], 'steps[0].script.path', /absolute/],
    ['both inline and path', [{ phase: 'PRE', script: { inline: 'true', path: '/x.sh' } }], 'steps[0].script', /exactly one of inline and path/],
    ['neither script nor http', [{ phase: 'PRE' }], 'steps[0]', /exactly one of script and http/],
    ['SKIP_INSTALLS after the installs', [{ phase: 'POST', onFailure: 'SKIP_INSTALLS', script: { inline: 'true' } }], 'steps[0].onFailure', /cannot skip them/],
    ['an interpreter with arguments', [{ phase: 'PRE', script: { inline: 'true', interpreter: 'bash -e' } }], 'steps[0].script.interpreter', /without spaces/],
    ['retries past the window', [{ phase: 'PRE', http: { url: 'https://x.example', timeoutSeconds: 300, retries: 10 } }], 'steps[0].http.timeoutSeconds', /more than the 1800 s window/, 30],
    ['a status out of range', [{ phase: 'PRE', http: { url: 'https://x.example', expectedStatus: [200, 700] } }], 'steps[0].http.expectedStatus[1]', /100 to 599/],
    ['a header the worker sets', [{ phase: 'PRE', http: { url: 'https://x.example', headers: [{ name: 'Host', value: 'a' }] } }], 'steps[0].http.headers[0].name', /set by the worker/],
    ['a header value on two lines', [{ phase: 'PRE', http: { url: 'https://x.example', headers: [{ name: 'X-A', value: 'a\r\nX-B: b' }] } }], 'steps[0].http.headers[0].value', /one line/],
    ['the same name twice', [{ name: 'drain', phase: 'PRE', script: { inline: 'true' } }, { name: 'Drain', phase: 'POST', script: { inline: 'true' } }], 'steps[1].name', /repeats steps\[0\]/],
  ])('refuses %s', (_what, steps, field, message, windowMinutes) => {
    const r = refusal(steps, windowMinutes);
    expect(r.field).toBe(field);
    expect(r.message).toMatch(message);
  });

  it('is part of the deployment input, with the secrets the server has', () => {
    const input: DeploymentInput = {
      name: 'with steps',
      osType: 'LINUX',
      machineIds: ['0b9f2f5e-4a8f-4d55-9f0e-2d0f8e6e1a11'],
      targetFilter: null,
      classifications: ['SECURITY'],
      includePatterns: [],
      excludePatterns: [],
      schedule: null,
      onDemandOnly: true,
      windowMinutes: 30,
      rebootSetting: 'NEVER',
      maxConcurrent: null,
      maxFailures: null,
      steps: [{ phase: 'PRE', http: { url: 'https://x.example', headers: [{ name: 'Authorization', secret: 'LB_TOKEN' }] } }],
    };
    expect(validateDeploymentInput(input, new Date())).toMatchObject({ ok: false, field: 'steps[0].http.headers[0].secret' });
    const ok = validateDeploymentInput(input, new Date(), { secretNames: secrets });
    expect(ok.ok && ok.value.steps?.length).toBe(1);
    const none = validateDeploymentInput({ ...input, steps: [] }, new Date());
    expect(none.ok && none.value.steps).toBeNull();
  });
});

const result = (r: Partial<StepResult>): StepResult => ({ index: 0, name: 'check', phase: 'POST', kind: 'HTTP', onFailure: 'FAIL_MACHINE', status: 'SUCCEEDED', message: null, exitCode: null, httpStatus: 200, attempts: 1, startedAt: null, endedAt: null, ...r });

describe('what a failed step does', () => {
  it('goes on when nothing failed, or only steps that CONTINUE', () => {
    expect(phaseVerdict([result({}), result({ index: 1, status: 'FAILED', onFailure: 'CONTINUE' })])).toEqual({ action: 'GO_ON' });
  });

  it('takes the first failed step that does not CONTINUE, naming it', () => {
    expect(phaseVerdict([result({ status: 'FAILED', onFailure: 'HALT_RUN', name: 'health', message: 'answered HTTP 503' }), result({ index: 1, status: 'FAILED', onFailure: 'FAIL_MACHINE' })])).toEqual({
      action: 'HALT_RUN',
      reason: 'Post-step "health" failed: answered HTTP 503',
    });
  });

  it('fails the first script of an agent that does not run scripts, so its onFailure applies', () => {
    const steps = stepsOf(
      [
        { name: 'stop', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: { inline: 'x', path: null, interpreter: '/bin/sh', timeoutSeconds: 5 }, http: null },
        { name: 'snap', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: { inline: 'y', path: null, interpreter: '/bin/sh', timeoutSeconds: 5 }, http: null },
      ],
      'PRE',
      'SCRIPT',
    );
    const old = scriptsUnsupported(steps, { capabilities: [], version: '0.1.0' });
    expect(old.map((r) => r.status)).toEqual(['FAILED', 'NOT_RUN']);
    expect(phaseVerdict(old)).toEqual({ action: 'SKIP_INSTALLS', reason: 'Pre-step "stop" failed: the machine\'s agent (version 0.1.0) does not run script steps; upgrade it (upgradeAgents)' });
    expect(scriptsUnsupported(steps, { capabilities: ['SCRIPT_STEPS'], version: '0.1.0' })).toEqual([]);
  });

  it("halts a ring's gate when a step asked to, until an operator resumes", () => {
    const gate = { maxFailures: { value: 5, unit: 'COUNT' as const }, soakSeconds: 0, requireApproval: false };
    const halted = gateDecision({ ringName: 'Canary', gate, total: 2, failed: 1, soaked: false, verdict: null, stepHalts: ['Post-step "health" failed: answered HTTP 503'] });
    expect(halted).toEqual({ kind: 'HALT', reason: 'Canary: Post-step "health" failed: answered HTTP 503. Resume the run to go on, or cancel it.' });
    expect(gateDecision({ ringName: 'Canary', gate, total: 2, failed: 1, soaked: false, verdict: { kind: 'RESUMED', by: 'op' }, stepHalts: ['x'] })).toEqual({ kind: 'PROMOTE' });
    expect(gateDecision({ ringName: 'Canary', gate, total: 2, failed: 1, soaked: false, verdict: null })).toEqual({ kind: 'PROMOTE' });
  });
});

describe('control-plane calls', () => {
  it('count any 2xx as success unless statuses are given', () => {
    expect([200, 204, 299, 301, 500].map((s) => statusExpected(s, []))).toEqual([true, true, true, false, false]);
    expect([200, 202].map((s) => statusExpected(s, [202]))).toEqual([false, true]);
  });

  it("send the run's and machine's context with the step's data", () => {
    const [step] = stepsOf([{ name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: null, http: { method: 'POST', url: 'https://x.example/', headers: [], body: { pool: 'web' }, expectedStatus: [], timeoutSeconds: 5, retries: 0 } }], 'PRE', 'HTTP');
    const body = callBody(step!, { deployment: { id: 'd', name: 'D' }, run: { id: 'r', ring: 1 }, machine: { id: 'm', name: 'web-1', machineRunId: 'mr', status: 'PENDING', rebootOutcome: null }, updates: {} });
    expect(body).toEqual({ event: 'fleetpatch.step.pre', step: { index: 0, name: 'drain', phase: 'PRE' }, deployment: { id: 'd', name: 'D' }, run: { id: 'r', ring: 1 }, machine: { id: 'm', name: 'web-1', machineRunId: 'mr', status: 'PENDING', rebootOutcome: null }, updates: {}, data: { pool: 'web' } });
  });

  it('tell the workflow which phases have steps and how long their calls may take', () => {
    expect(stepPhases(null)).toBeNull();
    const phases = stepPhases([{ name: 'a', phase: 'POST', onFailure: 'FAIL_MACHINE', script: null, http: { method: 'GET', url: 'https://x.example/', headers: [], body: null, expectedStatus: [], timeoutSeconds: 10, retries: 2 } }]);
    // Three attempts of 10 s, waits of 1 and 2 s between.
    expect(phases).toEqual({ pre: false, post: true, callSeconds: 33, postScriptSeconds: 0, scripts: false, postScripts: false });
  });

  it('say whether a run with steps can be batched: only calls, and only when the answer says so', () => {
    const call = { name: 'a', phase: 'POST' as const, onFailure: 'FAIL_MACHINE' as const, script: null, http: { method: 'GET' as const, url: 'https://x.example/', headers: [], body: null, expectedStatus: [], timeoutSeconds: 10, retries: 0 } };
    const script = { name: 'b', phase: 'PRE' as const, onFailure: 'SKIP_INSTALLS' as const, http: null, script: { inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 } };
    expect(callsOnly(stepPhases([call])!)).toBe(true);
    expect(callsOnly(stepPhases([call, script])!)).toBe(false);
    expect(stepPhases([script])!.scripts).toBe(true);
    // An answer recorded before `scripts` existed (a run in flight): a child workflow per machine, as it began.
    expect(callsOnly({ pre: false, post: true, callSeconds: 33, postScriptSeconds: 0 })).toBe(false);
  });

  it('say whether a run with scripts can be batched: PRE scripts only (with or without calls), and only when the answer says so', () => {
    const call = { name: 'a', phase: 'POST' as const, onFailure: 'FAIL_MACHINE' as const, script: null, http: { method: 'GET' as const, url: 'https://x.example/', headers: [], body: null, expectedStatus: [], timeoutSeconds: 10, retries: 0 } };
    const pre = { name: 'b', phase: 'PRE' as const, onFailure: 'SKIP_INSTALLS' as const, http: null, script: { inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 } };
    const post = { ...pre, name: 'c', phase: 'POST' as const, onFailure: 'FAIL_MACHINE' as const };
    expect(preScriptsOnly(stepPhases([pre])!)).toBe(true);
    expect(preScriptsOnly(stepPhases([pre, call])!)).toBe(true);
    expect(preScriptsOnly(stepPhases([pre, post])!)).toBe(false);
    expect(preScriptsOnly(stepPhases([post, call])!)).toBe(false);
    // Calls only: batched by callsOnly, not by this.
    expect(preScriptsOnly(stepPhases([call])!)).toBe(false);
    // An answer recorded before `postScripts` existed (a run in flight): a child workflow per machine, as it began.
    expect(preScriptsOnly({ pre: true, post: false, callSeconds: 0, postScriptSeconds: 0, scripts: true })).toBe(false);
  });

  it('batches a run with POST scripts by withPostScripts: one with a POST script, not one without, nor an answer recorded before `postScripts` existed', () => {
    const call = { name: 'a', phase: 'POST' as const, onFailure: 'FAIL_MACHINE' as const, script: null, http: { method: 'GET' as const, url: 'https://x.example/', headers: [], body: null, expectedStatus: [], timeoutSeconds: 10, retries: 0 } };
    const pre = { name: 'b', phase: 'PRE' as const, onFailure: 'SKIP_INSTALLS' as const, http: null, script: { inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 } };
    const post = { ...pre, name: 'c', phase: 'POST' as const, onFailure: 'FAIL_MACHINE' as const };
    expect(withPostScripts(stepPhases([post])!)).toBe(true);
    expect(withPostScripts(stepPhases([pre, post, call])!)).toBe(true);
    expect(withPostScripts(stepPhases([pre, call])!)).toBe(false);
    expect(withPostScripts(stepPhases([call])!)).toBe(false);
    expect(withPostScripts({ pre: false, post: true, callSeconds: 0, postScriptSeconds: 60, scripts: true })).toBe(false);
  });
});
