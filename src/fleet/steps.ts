/**
 * A deployment's pre and post steps: what an operator may enter (and the precise refusal when not),
 * what a failed step does to its machine and its run, what a control-plane call sends and whether
 * its answer counts as success, and what a machine whose agent cannot run scripts gets instead.
 *
 * Plain functions on plain data, imported by the API, the activities and the workflow sandbox: no
 * dependencies, no Node built-ins, no clock.
 *
 * Order on a machine: the PRE control-plane calls, then the PRE scripts (in the install job, before
 * its first update), the installs and the reboot, then the POST scripts (a job of their own, after
 * the machine is back), then the POST calls. Steps of one kind keep the order they were entered in.
 */

import { STEP_FAILURE_ACTIONS, type StepFailureAction, type StepKind, type StepPhase, type StepStatus } from '../domain/vocabulary.js';
import type { StepReport } from '../domain/types.js';

export { STEP_FAILURE_ACTIONS, type StepFailureAction, type StepKind, type StepPhase, type StepStatus };

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** A script the agent runs as root (the agent's own user) on the machine: inline text or a file already there. */
export interface ScriptStep {
  inline: string | null;
  path: string | null;
  /** The program the script is given to (`/bin/sh`, `bash`, `python3`): `interpreter <file>`. */
  interpreter: string;
  timeoutSeconds: number;
}

/** A header of a control-plane call: a literal value, or the name of a server-side secret (its value never leaves the worker). */
export interface HttpHeader {
  name: string;
  value: string | null;
  secret: string | null;
}

/** A call the worker makes: method, URL, headers, a JSON body with the run's and machine's context. */
export interface HttpStep {
  method: HttpMethod;
  url: string;
  headers: HttpHeader[];
  /** Sent as `data` beside the context. */
  body: Record<string, unknown> | null;
  /** Statuses that count as success; empty: any 2xx. */
  expectedStatus: number[];
  timeoutSeconds: number;
  /** Attempts after the first when the call fails (network error, timeout, unexpected status). */
  retries: number;
}

export interface DeploymentStep {
  name: string;
  phase: StepPhase;
  onFailure: StepFailureAction;
  script: ScriptStep | null;
  http: HttpStep | null;
}

/** A step as entered: exactly one of script and http. */
export interface StepInput {
  name?: string | null;
  phase: StepPhase;
  onFailure?: StepFailureAction | null;
  script?: { inline?: string | null; path?: string | null; interpreter?: string | null; timeoutSeconds?: number | null } | null;
  http?: {
    method?: string | null;
    url: string;
    headers?: Array<{ name: string; value?: string | null; secret?: string | null }> | null;
    body?: Record<string, unknown> | null;
    expectedStatus?: number[] | null;
    timeoutSeconds?: number | null;
    retries?: number | null;
  } | null;
}

/** How one step went on one machine: the shape the agent reports (src/domain/types.ts). */
export type StepResult = StepReport;

// ---------------------------------------------------------------------------------------------
// The rules' numbers
// ---------------------------------------------------------------------------------------------

export const MAX_STEPS = 20;
export const STEP_NAME_MAX_LENGTH = 64;
/** An inline script larger than this belongs in a file on the machine (script.path). */
export const SCRIPT_MAX_BYTES = 64 * 1024;
export const URL_MAX_LENGTH = 2000;
export const MAX_HEADERS = 20;
export const HEADER_VALUE_MAX_LENGTH = 4000;
/** A body that is context for a receiver, not a payload to carry. */
export const BODY_MAX_BYTES = 16 * 1024;
export const MAX_RETRIES = 10;
/** A call is a request to a service that answers, not a job: it has at most five minutes per attempt. */
export const HTTP_TIMEOUT_MAX_SECONDS = 300;
export const DEFAULT_SCRIPT_TIMEOUT_SECONDS = 300;
export const DEFAULT_HTTP_TIMEOUT_SECONDS = 30;
/** A secret's name as the server's settings spell it (FLEETPATCH_STEP_SECRET_<NAME>). */
export const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
const INTERPRETER = /^[A-Za-z0-9_./+-]{1,200}$/;
/** Headers the HTTP client sets itself. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection']);

/** The agent capability that says it runs script steps (sent in its facts). */
export const SCRIPT_STEPS_CAPABILITY = 'SCRIPT_STEPS';

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

export type StepsValidation = { ok: true; value: DeploymentStep[] } | { ok: false; field: string; message: string };

class StepProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}
function fail(field: string, message: string): never {
  throw new StepProblem(field, message);
}
const isWhole = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const quote = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
/** Control characters (C0 and DEL): never in a name, a path or a header value. */
const hasControl = (s: string): boolean => [...s].some((ch) => ch.codePointAt(0)! < 0x20 || ch.codePointAt(0) === 0x7f);
const utf8Length = (s: string): number => {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
};

/**
 * The deployment's steps normalised (names trimmed or given, defaults filled in), or the first
 * problem with its field (`steps[2].http.url`). `windowMinutes` bounds a step's timeout (a step
 * cannot outlast the window it runs in); `secretNames` are the secrets the server has.
 */
export function validateSteps(raw: readonly StepInput[] | null | undefined, context: { windowMinutes: number; secretNames: ReadonlySet<string> }): StepsValidation {
  try {
    return { ok: true, value: checkSteps(raw ?? [], context) };
  } catch (error) {
    if (error instanceof StepProblem) return { ok: false, field: error.field, message: error.message };
    throw error;
  }
}

function checkSteps(raw: readonly StepInput[], context: { windowMinutes: number; secretNames: ReadonlySet<string> }): DeploymentStep[] {
  if (raw.length > MAX_STEPS) fail('steps', `at most ${MAX_STEPS} steps; got ${raw.length}`);
  const names = new Map<string, number>();
  return raw.map((step, i) => {
    const checked = checkStep(step, i, context);
    const first = names.get(checked.name.toLowerCase());
    if (first !== undefined) fail(`steps[${i}].name`, `steps[${i}].name ${quote(checked.name)} repeats steps[${first}].name; name each step once`);
    names.set(checked.name.toLowerCase(), i);
    return checked;
  });
}

function checkStep(raw: StepInput, i: number, context: { windowMinutes: number; secretNames: ReadonlySet<string> }): DeploymentStep {
  const at = `steps[${i}]`;
  if (raw.phase !== 'PRE' && raw.phase !== 'POST') fail(`${at}.phase`, `${at}.phase must be PRE or POST; got ${quote(String(raw.phase))}`);
  const name = typeof raw.name === 'string' && raw.name.trim() !== '' ? raw.name.trim() : `Step ${i + 1}`;
  if ([...name].length > STEP_NAME_MAX_LENGTH) fail(`${at}.name`, `${at}.name is ${[...name].length} characters long; at most ${STEP_NAME_MAX_LENGTH}`);
  if (hasControl(name)) fail(`${at}.name`, `${at}.name contains a control character`);
  const onFailure = raw.onFailure ?? (raw.phase === 'PRE' ? 'SKIP_INSTALLS' : 'FAIL_MACHINE');
  if (!STEP_FAILURE_ACTIONS.includes(onFailure)) fail(`${at}.onFailure`, `${at}.onFailure must be one of ${STEP_FAILURE_ACTIONS.join(', ')}; got ${quote(String(onFailure))}`);
  if (onFailure === 'SKIP_INSTALLS' && raw.phase === 'POST') {
    fail(`${at}.onFailure`, `${at} is a POST step: it runs after the installs, so it cannot skip them; use FAIL_MACHINE, HALT_RUN or CONTINUE`);
  }
  const hasScript = raw.script !== null && raw.script !== undefined;
  const hasHttp = raw.http !== null && raw.http !== undefined;
  if (hasScript === hasHttp) fail(at, `${at} needs exactly one of script and http; got ${hasScript ? 'both' : 'neither'}`);
  const windowSeconds = context.windowMinutes * 60;
  if (hasScript) return { name, phase: raw.phase, onFailure, script: checkScript(raw.script!, `${at}.script`, windowSeconds), http: null };
  return { name, phase: raw.phase, onFailure, script: null, http: checkHttp(raw.http!, `${at}.http`, windowSeconds, context.secretNames) };
}

function checkTimeout(raw: number | null | undefined, field: string, fallback: number, max: number, why: string): number {
  const value = raw ?? fallback;
  if (!isWhole(value) || value < 1) fail(field, `${field} must be a whole number of seconds, at least 1; got ${String(value)}`);
  if (value > max) fail(field, `${field} is ${value} s; at most ${max} s (${why})`);
  return value;
}

function checkScript(raw: NonNullable<StepInput['script']>, at: string, windowSeconds: number): ScriptStep {
  const inline = typeof raw.inline === 'string' && raw.inline.trim() !== '' ? raw.inline : null;
  const path = typeof raw.path === 'string' && raw.path.trim() !== '' ? raw.path.trim() : null;
  if ((inline === null) === (path === null)) fail(at, `${at} needs exactly one of inline and path; got ${inline === null ? 'neither' : 'both'}`);
  if (inline !== null) {
    const bytes = utf8Length(inline);
    if (bytes > SCRIPT_MAX_BYTES) fail(`${at}.inline`, `${at}.inline is ${bytes} bytes; at most ${SCRIPT_MAX_BYTES} (put a larger script on the machine and give its path)`);
    if (inline.includes('\u0000')) fail(`${at}.inline`, `${at}.inline contains a NUL character`);
  }
  if (path !== null) {
    if (path.length > 1000 || hasControl(path)) fail(`${at}.path`, `${at}.path must be a file path of at most 1000 characters without control characters`);
    if (!path.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(path)) fail(`${at}.path`, `${at}.path must be absolute (/usr/local/bin/drain.sh or C:\\scripts\\drain.ps1); got ${quote(path)}`);
  }
  const interpreter = typeof raw.interpreter === 'string' && raw.interpreter.trim() !== '' ? raw.interpreter.trim() : '/bin/sh';
  if (!INTERPRETER.test(interpreter)) fail(`${at}.interpreter`, `${at}.interpreter must be a program name or path without spaces or arguments (/bin/sh, bash, python3); got ${quote(interpreter)}`);
  const timeoutSeconds = checkTimeout(raw.timeoutSeconds, `${at}.timeoutSeconds`, Math.min(DEFAULT_SCRIPT_TIMEOUT_SECONDS, windowSeconds), windowSeconds, 'the maintenance window');
  return { inline, path, interpreter, timeoutSeconds };
}

function checkHttp(raw: NonNullable<StepInput['http']>, at: string, windowSeconds: number, secretNames: ReadonlySet<string>): HttpStep {
  const method = (raw.method ?? 'POST').toUpperCase();
  if (!(HTTP_METHODS as readonly string[]).includes(method)) fail(`${at}.method`, `${at}.method must be one of ${HTTP_METHODS.join(', ')}; got ${quote(String(raw.method))}`);
  const url = typeof raw.url === 'string' ? raw.url.trim() : '';
  if (url.length > URL_MAX_LENGTH) fail(`${at}.url`, `${at}.url is ${url.length} characters long; at most ${URL_MAX_LENGTH}`);
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) fail(`${at}.url`, `${at}.url must be an http or https URL; got ${quote(url)}`);
  if (parsed.username || parsed.password) fail(`${at}.url`, `${at}.url carries credentials: put them in a header from a server-side secret instead`);
  const headers = (raw.headers ?? []).map((h, j) => {
    const field = `${at}.headers[${j}]`;
    const name = typeof h.name === 'string' ? h.name.trim() : '';
    if (!HEADER_NAME.test(name)) fail(`${field}.name`, `${field}.name must be an HTTP header name; got ${quote(name)}`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) fail(`${field}.name`, `${field}.name ${quote(name)} is set by the worker itself`);
    const hasValue = typeof h.value === 'string';
    const hasSecret = typeof h.secret === 'string' && h.secret !== '';
    if (hasValue === hasSecret) fail(field, `${field} needs exactly one of value and secret`);
    if (hasValue) {
      if (h.value!.length > HEADER_VALUE_MAX_LENGTH || hasControl(h.value!)) fail(`${field}.value`, `${field}.value must be at most ${HEADER_VALUE_MAX_LENGTH} characters on one line`);
      return { name, value: h.value!, secret: null };
    }
    const secret = h.secret!;
    if (!SECRET_NAME.test(secret)) fail(`${field}.secret`, `${field}.secret must be a secret's name (upper case letters, digits and _); got ${quote(secret)}`);
    if (!secretNames.has(secret)) {
      fail(`${field}.secret`, `${field}.secret ${quote(secret)} is not a secret this server has; set FLEETPATCH_STEP_SECRET_${secret} on the API and the worker`);
    }
    return { name, value: null, secret };
  });
  if (headers.length > MAX_HEADERS) fail(`${at}.headers`, `at most ${MAX_HEADERS} headers; got ${headers.length}`);
  const body = raw.body ?? null;
  if (body !== null) {
    if (typeof body !== 'object' || Array.isArray(body)) fail(`${at}.body`, `${at}.body must be a JSON object`);
    const bytes = utf8Length(JSON.stringify(body));
    if (bytes > BODY_MAX_BYTES) fail(`${at}.body`, `${at}.body is ${bytes} bytes as JSON; at most ${BODY_MAX_BYTES}`);
  }
  const expectedStatus = [...new Set(raw.expectedStatus ?? [])];
  expectedStatus.forEach((s, j) => {
    if (!isWhole(s) || s < 100 || s > 599) fail(`${at}.expectedStatus[${j}]`, `${at}.expectedStatus[${j}] must be an HTTP status from 100 to 599; got ${String(s)}`);
  });
  const timeoutSeconds = checkTimeout(raw.timeoutSeconds, `${at}.timeoutSeconds`, DEFAULT_HTTP_TIMEOUT_SECONDS, Math.min(HTTP_TIMEOUT_MAX_SECONDS, windowSeconds), windowSeconds < HTTP_TIMEOUT_MAX_SECONDS ? 'the maintenance window' : 'a call, per attempt');
  const retries = raw.retries ?? 0;
  if (!isWhole(retries) || retries < 0 || retries > MAX_RETRIES) fail(`${at}.retries`, `${at}.retries must be a whole number from 0 to ${MAX_RETRIES}; got ${String(retries)}`);
  if ((retries + 1) * timeoutSeconds > windowSeconds) {
    fail(`${at}.timeoutSeconds`, `${at}: ${retries + 1} attempt(s) of ${timeoutSeconds} s may take ${(retries + 1) * timeoutSeconds} s, more than the ${windowSeconds} s window`);
  }
  return { method: method as HttpMethod, url: parsed.toString(), headers, body, expectedStatus: expectedStatus.sort((a, b) => a - b), timeoutSeconds, retries };
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/** The steps of one phase and kind, each with its place in the deployment's list. */
export function stepsOf(steps: readonly DeploymentStep[], phase: StepPhase, kind: StepKind): Array<DeploymentStep & { index: number }> {
  return steps.map((s, index) => ({ ...s, index })).filter((s) => s.phase === phase && (kind === 'SCRIPT' ? s.script !== null : s.http !== null));
}

/** What a machine run's workflow is told of its steps: which phases have some, and the time budgets of its activities. */
export interface StepPhases {
  pre: boolean;
  post: boolean;
  /** The longest a phase's calls may take: every attempt at its timeout, plus the waits between. */
  callSeconds: number;
  /** The POST scripts' timeouts added up. */
  postScriptSeconds: number;
  /** Whether any step is a script (absent in what runs begun before it was recorded answered: unknown). */
  scripts?: boolean;
  /** Whether any POST step is a script (absent in what runs begun before it was recorded answered: unknown). */
  postScripts?: boolean;
}

/**
 * Whether a run's steps are all control-plane calls, which the batched run's advance makes itself
 * (docs/steps.md, "How a run with steps runs"): no step needs the agent beyond the install job. A run
 * with scripts, or whose recorded answer predates `scripts`, keeps a child workflow per machine.
 */
export function callsOnly(phases: StepPhases): boolean {
  return phases.scripts === false;
}

/**
 * Whether a run with scripts is a batched run all the same (docs/steps.md, "How a run with steps
 * runs"): its scripts are all PRE scripts, which go with the install job its advance hands out, and
 * whose results come back with the job's. A POST script is a job of its own after the reboot, which
 * a machine run's workflow waits for: a run with one, or whose recorded answer predates
 * `postScripts`, keeps a child workflow per machine.
 */
export function preScriptsOnly(phases: StepPhases): boolean {
  return phases.scripts === true && phases.postScripts === false;
}

/**
 * Whether a run with POST scripts is a batched run (docs/steps.md, "How a run with steps runs"):
 * its advance hands each machine its POST scripts as a job of their own once the machine's install
 * (and reboot) is through, and ends the machine when their results come. Runs begun before the
 * marker that says so (deploymentRun.ts) keep a child workflow per machine.
 */
export function withPostScripts(phases: StepPhases): boolean {
  return phases.scripts === true && phases.postScripts === true;
}

/**
 * Whether a run hands over install jobs with its first machines at all: not when the deployment has
 * PRE calls, which come first, in each machine run's workflow (runStepCalls), which then hands over
 * the job itself.
 */
export function handsOverAtRunStart(steps: readonly DeploymentStep[]): boolean {
  return stepsOf(steps, 'PRE', 'HTTP').length === 0;
}

/**
 * Whether a machine run's install job goes with the run's first machines (see handsOverAtRunStart):
 * only while it still runs without a reboot under way (PENDING, IN_PROGRESS), and not when the job
 * would carry PRE scripts its agent cannot run (its workflow's runStepCalls fails the first one).
 */
export function handedOverAtRunStart(steps: readonly DeploymentStep[], machineRun: { status: string; agentCapabilities: readonly string[] }): boolean {
  if (!handsOverAtRunStart(steps) || (machineRun.status !== 'PENDING' && machineRun.status !== 'IN_PROGRESS')) return false;
  return stepsOf(steps, 'PRE', 'SCRIPT').length === 0 || carriesScripts(machineRun.agentCapabilities);
}

/** Whether an install job carries its deployment's scripts: only to an agent that can run them. */
export function carriesScripts(agentCapabilities: readonly string[]): boolean {
  return agentCapabilities.includes(SCRIPT_STEPS_CAPABILITY);
}

/** The longest a phase's calls on one machine may take: every attempt at its timeout, plus the waits between. */
export function phaseCallSeconds(steps: readonly DeploymentStep[], phase: StepPhase): number {
  return steps
    .filter((s) => s.phase === phase && s.http)
    .reduce((sum, s) => sum + (s.http!.retries + 1) * s.http!.timeoutSeconds + Array.from({ length: s.http!.retries }, (_, i) => retryDelaySeconds(i + 1)).reduce((a, b) => a + b, 0), 0);
}

export function stepPhases(steps: readonly DeploymentStep[] | null | undefined): StepPhases | null {
  if (!steps || steps.length === 0) return null;
  const budget = (phase: StepPhase) => phaseCallSeconds(steps, phase);
  return {
    pre: steps.some((s) => s.phase === 'PRE'),
    post: steps.some((s) => s.phase === 'POST'),
    callSeconds: Math.max(budget('PRE'), budget('POST')),
    postScriptSeconds: steps.filter((s) => s.phase === 'POST' && s.script).reduce((sum, s) => sum + s.script!.timeoutSeconds, 0),
    scripts: steps.some((s) => Boolean(s.script)),
    postScripts: steps.some((s) => s.phase === 'POST' && Boolean(s.script)),
  };
}

/** Whether a call's answer counts as success. */
export function statusExpected(status: number, expected: readonly number[]): boolean {
  return expected.length === 0 ? status >= 200 && status < 300 : expected.includes(status);
}

/** Whether a failed call attempt is worth another: any failure is, while retries are left. */
export function callAgain(attempt: number, retries: number): boolean {
  return attempt <= retries;
}

/** Seconds before attempt `attempt + 1` of a call: 1, 2, 4... capped at 30. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(30, 2 ** Math.max(0, attempt - 1));
}

/** What a call sends: the run's and machine's context, and the step's own `data`. */
export interface CallContext {
  deployment: { id: string; name: string };
  run: { id: string; ring: number | null };
  machine: { id: string; name: string; machineRunId: string; status: string; rebootOutcome: string | null };
  /** Counts of the machine's updates by status (empty before the installs). */
  updates: Record<string, number>;
}

export function callBody(step: DeploymentStep & { index: number }, context: CallContext): Record<string, unknown> {
  return {
    event: step.phase === 'PRE' ? 'fleetpatch.step.pre' : 'fleetpatch.step.post',
    step: { index: step.index, name: step.name, phase: step.phase },
    ...context,
    data: step.http?.body ?? null,
  };
}

/**
 * What a failed step does once a phase has run: the first failed step that does not CONTINUE
 * decides; GO_ON when none did. The reason names the step and says what went wrong.
 */
export type PhaseVerdict = { action: 'GO_ON' } | { action: 'SKIP_INSTALLS' | 'FAIL_MACHINE' | 'HALT_RUN'; reason: string };

export function phaseVerdict(results: readonly StepResult[]): PhaseVerdict {
  const failed = results.find((r) => r.status === 'FAILED' && r.onFailure !== 'CONTINUE');
  if (!failed) return { action: 'GO_ON' };
  const what = failed.phase === 'PRE' ? 'Pre-step' : 'Post-step';
  const reason = `${what} ${quote(failed.name)} failed${failed.message ? `: ${failed.message}` : ''}`;
  return { action: failed.onFailure as 'SKIP_INSTALLS' | 'FAIL_MACHINE' | 'HALT_RUN', reason };
}

/** The reason an update left out by a failed pre-step gets (NOT_ATTEMPTED). */
export function skippedByStepReason(verdict: Extract<PhaseVerdict, { reason: string }>): string {
  return `Not attempted: ${verdict.reason}.`;
}

/** The results of steps that never ran because an earlier one stopped the phase. */
export function notRun(steps: ReadonlyArray<DeploymentStep & { index: number }>, message: string): StepResult[] {
  return steps.map((s) => ({
    index: s.index,
    name: s.name,
    phase: s.phase,
    kind: s.script ? 'SCRIPT' : 'HTTP',
    onFailure: s.onFailure,
    status: 'NOT_RUN',
    message,
    exitCode: null,
    httpStatus: null,
    attempts: 0,
    startedAt: null,
    endedAt: null,
  }));
}

/**
 * A machine whose agent does not say it runs script steps (an agent older than steps): none of the
 * phase's scripts is sent to it. Its first script step counts as failed with that reason (so its
 * onFailure applies: an old agent never installs behind a pre-step it skipped), the rest NOT_RUN.
 * Empty when the agent can run them or the phase has no script.
 */
export function scriptsUnsupported(scripts: ReadonlyArray<DeploymentStep & { index: number }>, agent: { capabilities: readonly string[]; version: string | null }): StepResult[] {
  if (scripts.length === 0 || agent.capabilities.includes(SCRIPT_STEPS_CAPABILITY)) return [];
  const [first, ...rest] = scripts;
  const message = `the machine's agent${agent.version ? ` (version ${agent.version})` : ''} does not run script steps; upgrade it (upgradeAgents)`;
  return [{ ...notRun([first!], message)[0]!, status: 'FAILED' }, ...notRun(rest, 'an earlier step failed')];
}
