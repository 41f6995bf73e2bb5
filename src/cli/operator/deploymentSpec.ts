import fs from 'node:fs';
import { buildSchema, coerceInputValue, type GraphQLInputType, type GraphQLSchema } from 'graphql';
import { recurrenceOfInput, validateDeploymentInput, type NormalisedDeployment, type RingInput } from '../../fleet/deploymentInput.js';
import type { StepInput } from '../../fleet/steps.js';
import type { CliDeploymentRolloutFragment, CliDeploymentSpecFragment, DeploymentInput } from './graphql.generated.js';

/**
 * A deployment as code: the fields of the API's DeploymentInput, and `paused`. What a deployments
 * file holds, what `export` writes, what `apply` and `diff` compare. Checked by the API's own rules:
 * the types of schema/schema.graphql (an unknown field or a wrong type names its path) and the rules
 * of src/fleet/deploymentInput.ts, the function the API validates with; the rules that need the
 * fleet (machine ids, OS types, targets that match nothing) are checked by the server before
 * anything is written.
 */
export type DeploymentSpec = DeploymentInput & { paused?: boolean };

/** A problem with a spec: where (`schedule.startAt`, `classifications[1]`) and what. */
export interface SpecProblem {
  path: Array<string | number>;
  message: string;
}

let schema: GraphQLSchema | undefined;

/** The API's schema, as committed: the CLI ships with the schema of its own version. */
function apiSchema(): GraphQLSchema {
  schema ??= buildSchema(fs.readFileSync(new URL('../../../schema/schema.graphql', import.meta.url), 'utf8'));
  return schema;
}

/** `schedule.startAt` for ['schedule', 'startAt'], `classifications[1]` for ['classifications', 1]. */
export function pathText(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** A field path of the API (`schedule.startAt`, `includePatterns[2]`) as path segments. */
export function pathOf(field: string): Array<string | number> {
  return [...field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

/**
 * The spec's types, checked against DeploymentInput as the API would (GraphQL input coercion), with
 * the schema's defaults filled in; `paused` checked beside it. Every problem, each with its path.
 */
export function checkSpecTypes(raw: unknown): { ok: true; spec: DeploymentSpec } | { ok: false; problems: SpecProblem[] } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, problems: [{ path: [], message: 'a deployment is a mapping of its fields (name, osType, classifications, ...)' }] };
  const { paused, ...fields } = raw as Record<string, unknown>;
  const problems: SpecProblem[] = [];
  if (paused !== undefined && typeof paused !== 'boolean') problems.push({ path: ['paused'], message: `paused must be true or false; got ${JSON.stringify(paused)}` });
  const type = apiSchema().getType('DeploymentInput') as GraphQLInputType;
  const coerced = coerceInputValue(fields, type, (path, _value, error) => {
    // GraphQL names an unknown field in its message, at its parent's path: point at the field itself.
    const unknown = /^Field "([^"]+)" is not defined by type/.exec(error.message);
    problems.push({ path: unknown ? [...path, unknown[1]!] : [...path], message: error.message });
  }) as DeploymentInput | undefined;
  if (problems.length > 0 || !coerced) return { ok: false, problems };
  return { ok: true, spec: { ...coerced, ...(typeof paused === 'boolean' ? { paused } : {}) } };
}

/** A deployment as stored, with its rings and steps: what deployments as code compares. */
export type StoredDeployment = CliDeploymentSpecFragment & CliDeploymentRolloutFragment;

/** A deployment as stored, as a spec with every field written out (what `export` writes). */
export function specOfDeployment(d: StoredDeployment): DeploymentSpec {
  const r = d.schedule?.recurrence;
  const recurrence = !r
    ? null
    : r.frequency === 'ONCE'
      ? { frequency: r.frequency }
      : {
          frequency: r.frequency,
          every: r.every,
          ...(r.weekDays ? { weekDays: r.weekDays } : {}),
          ...(r.monthDay !== null ? { monthDay: r.monthDay } : {}),
          ...(r.nthWeekday ? { nthWeekday: { ordinal: r.nthWeekday.ordinal, weekDay: r.nthWeekday.weekDay } } : {}),
          ...(r.offsetDays !== null && r.nthWeekday ? { offsetDays: r.offsetDays } : {}),
        };
  return {
    name: d.name,
    osType: d.osType,
    machineIds: d.machineIds,
    targetFilter: d.targetFilter ? { tags: d.targetFilter.tags, nameContains: d.targetFilter.nameContains } : null,
    classifications: d.classifications,
    ...(d.useBaseline ? { useBaseline: true } : {}),
    includePatterns: d.includePatterns,
    excludePatterns: d.excludePatterns,
    onDemandOnly: d.onDemandOnly,
    schedule: d.schedule && recurrence ? { startAt: d.schedule.startAt, timeZone: d.schedule.timeZone, recurrence, endAt: d.schedule.endAt } : null,
    windowMinutes: d.windowMinutes,
    rebootSetting: d.rebootSetting,
    maxConcurrent: d.maxConcurrent ? { value: d.maxConcurrent.value, unit: d.maxConcurrent.unit } : null,
    maxFailures: d.maxFailures ? { value: d.maxFailures.value, unit: d.maxFailures.unit } : null,
    ...(d.rings ? { rings: d.rings.map(ringSpec) } : {}),
    ...(d.steps ? { steps: d.steps.map(stepSpec) } : {}),
    paused: d.paused,
  };
}

type StoredRing = NonNullable<CliDeploymentRolloutFragment['rings']>[number];
type StoredStep = NonNullable<CliDeploymentRolloutFragment['steps']>[number];

/** Only what is set: a ring's way of choosing machines is one of filter, machineIds and percent. */
export function ringSpec(r: StoredRing): NonNullable<DeploymentInput['rings']>[number] {
  return {
    name: r.name,
    ...(r.filter ? { filter: { tags: r.filter.tags, environments: r.filter.environments, ...(r.filter.nameContains !== null ? { nameContains: r.filter.nameContains } : {}) } } : {}),
    ...(r.machineIds ? { machineIds: r.machineIds } : {}),
    ...(r.percent !== null ? { percent: r.percent } : {}),
    ...(r.maxConcurrent ? { maxConcurrent: { value: r.maxConcurrent.value, unit: r.maxConcurrent.unit } } : {}),
    gate: {
      ...(r.gate.maxFailures ? { maxFailures: { value: r.gate.maxFailures.value, unit: r.gate.maxFailures.unit } } : {}),
      soakSeconds: r.gate.soakSeconds,
      requireApproval: r.gate.requireApproval,
    },
  };
}

/** A step as written in a file: a header names its secret (the value stays on the server) or its value. */
export function stepSpec(st: StoredStep): NonNullable<DeploymentInput['steps']>[number] {
  const defined = <T extends Record<string, unknown>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)) as T;
  return {
    name: st.name,
    phase: st.phase,
    onFailure: st.onFailure,
    ...(st.script ? { script: defined({ ...st.script }) } : {}),
    ...(st.http ? { http: defined({ ...st.http, headers: st.http.headers.map((h) => defined({ ...h })) }) } : {}),
  };
}

/**
 * The input to send for a spec. Replacing a deployment, a spec without `schedule.startAt` keeps the
 * stored start (the API keeps a stored start even when it is past); a new one gets the API's default.
 */
export function inputOfSpec(spec: DeploymentSpec, storedStartAt?: string | null): DeploymentInput {
  const { paused: _paused, ...input } = spec;
  if (!storedStartAt || input.onDemandOnly || input.schedule?.startAt) return input;
  return { ...input, schedule: { timeZone: 'UTC', ...(input.schedule ?? {}), startAt: storedStartAt } };
}

/** The comparable form of a deployment: the API's normalisation, lists whose order does not matter sorted. */
export type CanonicalDeployment = Record<string, unknown>;

/**
 * A spec (types already checked) normalised by the API's rules (src/fleet/deploymentInput.ts), as
 * the API would store it; or the rule it breaks. `storedStartAt`: the start of the deployment it
 * replaces.
 */
export function normaliseSpec(spec: DeploymentSpec, now: Date, storedStartAt?: string | null): { ok: true; value: CanonicalDeployment } | { ok: false; problem: SpecProblem } {
  const input = inputOfSpec(spec, storedStartAt);
  const checked = validateDeploymentInput(
    {
      name: input.name,
      osType: input.osType,
      machineIds: input.machineIds ?? [],
      targetFilter: input.targetFilter ? { tags: input.targetFilter.tags ?? [], nameContains: input.targetFilter.nameContains ?? null } : null,
      classifications: input.classifications ?? [],
      useBaseline: input.useBaseline ?? false,
      includePatterns: input.includePatterns ?? [],
      excludePatterns: input.excludePatterns ?? [],
      schedule: input.schedule
        ? {
            startAt: input.schedule.startAt ? new Date(input.schedule.startAt) : null,
            timeZone: input.schedule.timeZone ?? 'UTC',
            recurrence: recurrenceOfInput(input.schedule.recurrence),
            endAt: input.schedule.endAt ? new Date(input.schedule.endAt) : null,
          }
        : null,
      onDemandOnly: input.onDemandOnly ?? false,
      windowMinutes: input.windowMinutes ?? 120,
      rebootSetting: input.rebootSetting ?? 'IF_REQUIRED',
      maxConcurrent: input.maxConcurrent ? { value: input.maxConcurrent.value, unit: input.maxConcurrent.unit ?? 'COUNT' } : null,
      maxFailures: input.maxFailures ? { value: input.maxFailures.value, unit: input.maxFailures.unit ?? 'COUNT' } : null,
      rings: (input.rings as RingInput[] | null | undefined) ?? null,
      steps: (input.steps as StepInput[] | null | undefined) ?? null,
    },
    now,
    // Which secrets exist only the server knows: it checks the names when the deployment is applied.
    { storedStartAt: storedStartAt ? new Date(storedStartAt) : null, secretNames: new Set((input.steps ?? []).flatMap((st) => (st.http?.headers ?? []).flatMap((h) => (h.secret ? [h.secret] : [])))) },
  );
  if (!checked.ok) return { ok: false, problem: { path: pathOf(checked.field), message: checked.message } };
  return { ok: true, value: canonical(checked.value, spec.paused ?? false) };
}

function canonical(v: NormalisedDeployment, paused: boolean): CanonicalDeployment {
  const sorted = (values: readonly string[]) => [...values].sort();
  const recurrence = v.schedule ? (v.schedule.recurrence as unknown as Record<string, unknown>) : null;
  return {
    name: v.name,
    osType: v.osType,
    machineIds: sorted(v.machineIds),
    targetFilter: v.targetFilter ? { tags: sorted(v.targetFilter.tags), nameContains: v.targetFilter.nameContains } : null,
    classifications: v.classifications,
    useBaseline: v.useBaseline,
    includePatterns: sorted(v.includePatterns),
    excludePatterns: sorted(v.excludePatterns),
    onDemandOnly: v.schedule === null,
    'schedule.startAt': v.schedule?.startAt.toISOString() ?? null,
    'schedule.timeZone': v.schedule?.timeZone ?? null,
    'schedule.recurrence': recurrence && Array.isArray(recurrence.weekDays) ? { ...recurrence, weekDays: sorted(recurrence.weekDays as string[]) } : recurrence,
    'schedule.endAt': v.schedule?.endAt?.toISOString() ?? null,
    windowMinutes: v.windowMinutes,
    rebootSetting: v.rebootSetting,
    maxConcurrent: v.maxConcurrent,
    maxFailures: v.maxFailures,
    rings: v.rings,
    steps: v.steps,
    paused,
  };
}

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

/** What differs, field by field, from `current` to `wanted`. `paused` is only compared when the spec says it. */
export function changesBetween(current: CanonicalDeployment, wanted: CanonicalDeployment, options: { comparePaused: boolean }): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const field of Object.keys(wanted)) {
    if (field === 'paused' && !options.comparePaused) continue;
    if (JSON.stringify(current[field]) !== JSON.stringify(wanted[field])) changes.push({ field, from: current[field], to: wanted[field] });
  }
  return changes;
}

/** A value as a diff shows it: lists in brackets, null as "none". */
export function shown(value: unknown): string {
  if (value === null || value === undefined) return 'none';
  if (Array.isArray(value)) return `[${value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? shown(v) : String(v)}`)
      .join(', ')}}`;
  }
  return String(value);
}
