/**
 * Rings in words, as the deployment and run pages say them, and the form's ring drafts as the API's
 * RingInput. Plain functions: the pages only lay them out.
 */
import { ENVIRONMENTS as DOMAIN_ENVIRONMENTS } from '../../src/domain/vocabulary.js';
import type { Environment, LimitUnit, RingDefinitionFragment, RingInput } from './graphql.generated.js';

/** The environments in alphabetical order, as the ring editor offers them. */
export const ENVIRONMENTS: Environment[] = [...DOMAIN_ENVIRONMENTS].sort();

type Limit = { value: number; unit: LimitUnit };

/** 3 s, 10 min, 2 h, 1 day: how long a soak is. */
export function duration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? '' : 's'}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const limitText = (l: Limit) => (l.unit === 'PERCENT' ? `${l.value} %` : `${l.value}`);

/** How a ring chooses its machines among the run's targets (chosen machines by name where `names` knows them all). */
export function ringChoice(def: Pick<RingDefinitionFragment, 'percent' | 'machineIds' | 'filter'>, names: ReadonlyMap<string, string> = new Map()): string {
  if (def.percent !== null) return `${def.percent} % of the targets left`;
  if (def.machineIds) {
    const named = def.machineIds.map((id) => names.get(id));
    if (named.every(Boolean)) return `Machines: ${named.join(', ')}`;
    return `${def.machineIds.length} chosen machine${def.machineIds.length === 1 ? '' : 's'}`;
  }
  if (def.filter) {
    const parts = [
      def.filter.tags.length > 0 ? `tags ${def.filter.tags.join(', ')}` : '',
      def.filter.nameContains ? `name contains “${def.filter.nameContains}”` : '',
      def.filter.environments.length > 0 ? `in ${def.filter.environments.join(' or ')}` : '',
    ].filter(Boolean);
    return `Filter: ${parts.join('; ')}`;
  }
  return '—';
}

/** What a ring's gate asks before the next ring starts, and its own rate. */
export function gateText(def: Pick<RingDefinitionFragment, 'gate' | 'maxConcurrent'>, last: boolean): string {
  const { gate } = def;
  const parts = [gate.maxFailures ? `at most ${limitText(gate.maxFailures)} may fail` : 'none may fail'];
  if (gate.soakSeconds > 0) parts.push(`soak ${duration(gate.soakSeconds)}`);
  if (gate.requireApproval) parts.push('an operator’s approval');
  if (def.maxConcurrent) parts.push(`${limitText(def.maxConcurrent)} at a time`);
  return last && parts.length === 1 && !def.maxConcurrent ? 'Last ring: nothing after it' : parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// The form's drafts
// ---------------------------------------------------------------------------------------------

export type RingChoiceKind = 'percent' | 'filter' | 'machines';
export type SoakUnit = 'SECONDS' | 'MINUTES' | 'HOURS';
const SOAK_SECONDS: Record<SoakUnit, number> = { SECONDS: 1, MINUTES: 60, HOURS: 3600 };

/** One ring as the form holds it: the strings of its controls. */
export interface RingDraft {
  key: number;
  name: string;
  by: RingChoiceKind;
  percent: string;
  tags: string;
  nameContains: string;
  environments: Environment[];
  machineIds: string[];
  maxConcurrent: string;
  maxConcurrentUnit: LimitUnit;
  maxFailures: string;
  maxFailuresUnit: LimitUnit;
  soak: string;
  soakUnit: SoakUnit;
  requireApproval: boolean;
}

let nextKey = 1;

export function newRing(index: number): RingDraft {
  return {
    key: nextKey++,
    name: `Ring ${index + 1}`,
    by: 'percent',
    percent: '',
    tags: '',
    nameContains: '',
    environments: [],
    machineIds: [],
    maxConcurrent: '',
    maxConcurrentUnit: 'COUNT',
    maxFailures: '',
    maxFailuresUnit: 'COUNT',
    soak: '',
    soakUnit: 'MINUTES',
    requireApproval: false,
  };
}

const number = (text: string) => (text.trim() === '' ? null : Number(text));
const list = (text: string) => text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);

/**
 * A draft as the API takes it. The last ring's soak and approval are not sent (the form does not
 * show them there: its gate promotes to no further ring); the API checks everything else.
 */
export function ringInput(draft: RingDraft, last: boolean): RingInput {
  const limit = (value: string, unit: LimitUnit) => (number(value) === null ? undefined : { value: Number(value), unit });
  const soak = number(draft.soak);
  const input: RingInput = {
    name: draft.name.trim() || undefined,
    maxConcurrent: limit(draft.maxConcurrent, draft.maxConcurrentUnit),
    gate: {
      maxFailures: limit(draft.maxFailures, draft.maxFailuresUnit),
      soakSeconds: last || soak === null ? 0 : Math.round(soak * SOAK_SECONDS[draft.soakUnit]),
      requireApproval: !last && draft.requireApproval,
    },
  };
  if (draft.by === 'percent') input.percent = number(draft.percent);
  if (draft.by === 'machines') input.machineIds = draft.machineIds;
  if (draft.by === 'filter') input.filter = { tags: list(draft.tags), nameContains: draft.nameContains.trim() || undefined, environments: draft.environments };
  return input;
}

/** The form fields of `count` rings, keyed as the API names them in `extensions.field`. */
export function ringFields(count: number): string[] {
  const fields = ['rings'];
  for (let i = 0; i < count; i++) {
    const at = `rings[${i}]`;
    fields.push(at, `${at}.name`, `${at}.percent`, `${at}.filter`, `${at}.filter.tags`, `${at}.filter.nameContains`, `${at}.filter.environments`, `${at}.machineIds`, `${at}.maxConcurrent`, `${at}.gate.maxFailures`, `${at}.gate.soakSeconds`, `${at}.gate.requireApproval`);
  }
  return fields;
}
