import { describe, expect, it } from 'vitest';
import { validateSteps, type StepInput } from '../../src/fleet/steps.js';
import { newHeader, newStep, parseBody, stepFields, stepInput, stepProblems, stepText } from '../../web/src/steps.js';

/** The deployment form's pre and post steps as the API takes them. */
describe("the console's steps", () => {
  it('sends an inline script step with only what was typed; empty controls leave the API its defaults', () => {
    const drain = { ...newStep(0), name: ' drain ', inline: 'systemctl stop app\n' };
    expect(stepInput(drain)).toEqual({ name: 'drain', phase: 'PRE', onFailure: undefined, script: { inline: 'systemctl stop app\n', path: undefined, interpreter: undefined, timeoutSeconds: undefined } });
    const health = { ...newStep(1, 'POST'), source: 'path' as const, path: ' /usr/local/bin/health ', interpreter: 'bash', scriptTimeout: '60', onFailure: 'HALT_RUN' as const, inline: 'not sent' };
    expect(stepInput(health)).toEqual({ name: 'Step 2', phase: 'POST', onFailure: 'HALT_RUN', script: { inline: undefined, path: '/usr/local/bin/health', interpreter: 'bash', timeoutSeconds: 60 } });
  });

  it('sends an HTTP step with its headers as a literal value or the name of a secret, its JSON body and its statuses', () => {
    const notify = {
      ...newStep(0, 'POST'),
      kind: 'http' as const,
      method: 'PUT',
      url: ' https://cmdb.example/hook ',
      headers: [{ ...newHeader(), name: 'X-Team', text: 'ops' }, { ...newHeader(), name: 'Authorization', from: 'secret' as const, text: ' CMDB_TOKEN ' }],
      body: '{"change": "CHG-1"}',
      expectedStatus: '200, 204',
      httpTimeout: '10',
      retries: '2',
      inline: 'not sent',
    };
    expect(stepInput(notify)).toEqual({
      name: 'Step 1',
      phase: 'POST',
      onFailure: undefined,
      http: {
        method: 'PUT',
        url: 'https://cmdb.example/hook',
        headers: [{ name: 'X-Team', value: 'ops' }, { name: 'Authorization', secret: 'CMDB_TOKEN' }],
        body: { change: 'CHG-1' },
        expectedStatus: [200, 204],
        timeoutSeconds: 10,
        retries: 2,
      },
    });
    // What the form sends, the API's own rules accept (the secret exists on this server).
    const rules = { windowMinutes: 120, secretNames: new Set(['CMDB_TOKEN']) };
    expect(validateSteps([stepInput(notify) as StepInput], rules)).toMatchObject({ ok: true });
    // And what they refuse names a field the form shows.
    const refused = validateSteps([stepInput({ ...notify, url: 'ftp://cmdb.example' }) as StepInput], rules);
    expect(refused).toMatchObject({ ok: false, field: 'steps[0].http.url' });
    expect(stepFields([notify])).toContain(refused.ok ? '' : refused.field);
  });

  it('says a body that is not a JSON object at its field, before asking the API', () => {
    expect(parseBody('')).toEqual({});
    expect(parseBody('[1]').problem).toMatch(/must be a JSON object/);
    expect(parseBody('{oops').problem).toMatch(/^The body is not JSON/);
    const steps = [newStep(0), { ...newStep(1), kind: 'http' as const, body: '{oops' }, { ...newStep(2), body: '{oops' }];
    expect(stepProblems(steps).map((p) => p.field)).toEqual(['steps[1].http.body']);
  });

  it("knows every field the API names in a step's error, so each is shown at its control", () => {
    const fields = stepFields([newStep(0), { ...newStep(1), kind: 'http', headers: [newHeader()] }]);
    expect(fields).toEqual(expect.arrayContaining(['steps', 'steps[0]', 'steps[0].onFailure', 'steps[0].script.inline', 'steps[1].http.url', 'steps[1].http.headers[0]', 'steps[1].http.headers[0].name', 'steps[1].http.retries']));
    // Only the controls the form shows: a script step has no URL to focus.
    expect(fields).not.toContain('steps[0].http.url');
    expect(fields).not.toContain('steps[1].script.inline');
  });

  it("says a stored step in words, a secret header by the secret's name", () => {
    const script = { inline: null, path: '/usr/local/bin/health', interpreter: '/bin/sh', timeoutSeconds: 300 };
    expect(stepText({ name: 'health', phase: 'POST', onFailure: 'HALT_RUN', script, http: null })).toBe('POST, runs /usr/local/bin/health with /bin/sh (timeout 300 s); on failure: fail the machine and halt the run');
    const http = { method: 'POST', url: 'https://lb.example/drain', headers: [{ name: 'X-Team', secret: null }, { name: 'Authorization', secret: 'LB_TOKEN' }], timeoutSeconds: 30, retries: 1 };
    expect(stepText({ name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: null, http })).toBe('PRE, calls POST https://lb.example/drain (timeout 30 s, 1 retry; Authorization from secret LB_TOKEN); on failure: skip the installs on the machine');
  });
});
