/**
 * The deployment form's pre and post steps as the API's DeploymentStepInput, and the fields the
 * API names in a step's errors. Plain functions: the form only lays them out (docs/steps.md).
 */
import type { DeploymentQuery, DeploymentStepInput, StepFailureAction, StepPhase } from './graphql.generated.js';

export type StepKindChoice = 'script' | 'http';
export type ScriptSource = 'inline' | 'path';

/** A header: a literal value, or the NAME of a secret the server holds (its value never passes here). */
export interface HeaderDraft {
  key: number;
  name: string;
  from: 'value' | 'secret';
  text: string;
}

/** One step as the form holds it: the strings of its controls. */
export interface StepDraft {
  key: number;
  name: string;
  phase: StepPhase;
  /** '' sends nothing: the API's default for the phase. */
  onFailure: StepFailureAction | '';
  kind: StepKindChoice;
  source: ScriptSource;
  inline: string;
  path: string;
  interpreter: string;
  scriptTimeout: string;
  method: string;
  url: string;
  headers: HeaderDraft[];
  body: string;
  expectedStatus: string;
  httpTimeout: string;
  retries: string;
}

/** What a failed step does when the form leaves it to the default (src/fleet/steps.ts decides the same). */
export const DEFAULT_ON_FAILURE: Record<StepPhase, StepFailureAction> = { PRE: 'SKIP_INSTALLS', POST: 'FAIL_MACHINE' };
export const FAILURE_ACTIONS: Record<StepFailureAction, string> = {
  SKIP_INSTALLS: 'Skip the installs on the machine',
  FAIL_MACHINE: 'Fail the machine',
  HALT_RUN: 'Fail the machine and halt the run',
  CONTINUE: 'Record it and go on',
};
export const HTTP_METHODS = ['POST', 'GET', 'PUT', 'PATCH', 'DELETE'];

let nextKey = 1;

export function newHeader(): HeaderDraft {
  return { key: nextKey++, name: '', from: 'value', text: '' };
}

export function newStep(index: number, phase: StepPhase = 'PRE'): StepDraft {
  return {
    key: nextKey++,
    name: `Step ${index + 1}`,
    phase,
    onFailure: '',
    kind: 'script',
    source: 'inline',
    inline: '',
    path: '',
    interpreter: '',
    scriptTimeout: '',
    method: 'POST',
    url: '',
    headers: [],
    body: '',
    expectedStatus: '',
    httpTimeout: '',
    retries: '',
  };
}

/** Empty → undefined (the API's default); anything else a number, NaN included, for the API to judge. */
const number = (text: string) => (text.trim() === '' ? undefined : Number(text));
const list = (text: string) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

/** The body as typed: empty is none; text that is not JSON is a problem for its own field. */
export function parseBody(text: string): { body?: Record<string, unknown>; problem?: string } {
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: 'The body must be a JSON object, like {"reason": "patching"}.' };
    return { body: value as Record<string, unknown> };
  } catch (e) {
    return { problem: `The body is not JSON: ${(e as Error).message}` };
  }
}

/** A draft as the API takes it. A body that is not a JSON object is left out: `stepProblems` says so first. */
export function stepInput(draft: StepDraft): DeploymentStepInput {
  const input: DeploymentStepInput = { name: draft.name.trim() || undefined, phase: draft.phase, onFailure: draft.onFailure || undefined };
  if (draft.kind === 'script') {
    input.script = {
      inline: draft.source === 'inline' ? draft.inline : undefined,
      path: draft.source === 'path' ? draft.path.trim() : undefined,
      interpreter: draft.interpreter.trim() || undefined,
      timeoutSeconds: number(draft.scriptTimeout),
    };
  } else {
    const statuses = list(draft.expectedStatus);
    input.http = {
      method: draft.method,
      url: draft.url.trim(),
      headers: draft.headers.length > 0 ? draft.headers.map((h) => (h.from === 'secret' ? { name: h.name.trim(), secret: h.text.trim() } : { name: h.name.trim(), value: h.text })) : undefined,
      body: parseBody(draft.body).body,
      expectedStatus: statuses.length > 0 ? statuses.map(Number) : undefined,
      timeoutSeconds: number(draft.httpTimeout),
      retries: number(draft.retries),
    };
  }
  return input;
}

/** What the form can tell before asking the API: a body that is not a JSON object. Keyed as the API keys its fields. */
export function stepProblems(drafts: StepDraft[]): Array<{ field: string; message: string }> {
  return drafts.flatMap((d, i) => {
    const problem = d.kind === 'http' ? parseBody(d.body).problem : undefined;
    return problem ? [{ field: `steps[${i}].http.body`, message: problem }] : [];
  });
}

/** The form fields of these steps, keyed as the API names them in `extensions.field`. */
export function stepFields(drafts: StepDraft[]): string[] {
  const fields = ['steps'];
  drafts.forEach((d, i) => {
    const at = `steps[${i}]`;
    fields.push(at, `${at}.name`, `${at}.phase`, `${at}.onFailure`);
    // A step's `script` or `http` as a whole (neither, or both) is shown at its kind choice: `${at}`.
    if (d.kind === 'script') fields.push(`${at}.script.inline`, `${at}.script.path`, `${at}.script.interpreter`, `${at}.script.timeoutSeconds`);
    else {
      fields.push(`${at}.http.method`, `${at}.http.url`, `${at}.http.headers`, `${at}.http.body`, `${at}.http.expectedStatus`, `${at}.http.timeoutSeconds`, `${at}.http.retries`);
      d.headers.forEach((_, j) => fields.push(`${at}.http.headers[${j}]`, `${at}.http.headers[${j}].name`));
    }
  });
  return fields;
}

type StoredStep = NonNullable<NonNullable<DeploymentQuery['deployment']>['steps']>[number];

/** A stored step in words, as the deployment's page lists it; a header from a secret by the secret's name only. */
export function stepText(step: StoredStep): string {
  const failure = `on failure: ${FAILURE_ACTIONS[step.onFailure].toLowerCase()}`;
  if (step.script) {
    const what = step.script.path ? `runs ${step.script.path}` : 'runs its script';
    return `${step.phase}, ${what} with ${step.script.interpreter} (timeout ${step.script.timeoutSeconds} s); ${failure}`;
  }
  const http = step.http!;
  const secrets = http.headers.filter((h) => h.secret).map((h) => `${h.name} from secret ${h.secret}`);
  const retries = http.retries > 0 ? `, ${http.retries} ${http.retries === 1 ? 'retry' : 'retries'}` : '';
  return `${step.phase}, calls ${http.method} ${http.url} (timeout ${http.timeoutSeconds} s${retries}${secrets.length > 0 ? `; ${secrets.join(', ')}` : ''}); ${failure}`;
}
