import { DEFAULT_HISTORY_DAYS, HISTORY_CLASSIFICATIONS, MAX_HISTORY_DAYS, MAX_TAG_GROUPS } from '../fleet/complianceHistory.js';
import { BASELINE_LIMITS } from '../fleet/baselines.js';
import {
  GraphQLError,
  getNamedType,
  getNullableType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isObjectType,
  isEnumType,
  isUnionType,
  Kind,
  type ASTNode,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { CLASSIFICATIONS_BY_OS, MAX_MACHINE_IDS, MAX_RINGS } from '../fleet/deploymentInput.js';
import { MAX_HEADERS, MAX_STEPS } from '../fleet/steps.js';
import { MAX_LINES_PER_EVENT, MAX_REPOSITORY_PROBLEMS } from './agent/agent.schema.js';
import type { ApiLimits } from '../config.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PAGE_SIZES } from './pageSize.js';

/**
 * The limits on what one GraphQL operation may ask for, checked while the document is validated:
 * before any resolver runs, one request cannot ask for the whole fleet's every update of every
 * run, nor make the server repeat a cheap field ten thousand times.
 *
 * - Tokens: the parser stops past `maxTokens` (see `parseOptions`), before a syntax tree exists.
 * - Breadth: at most `maxBreadth` fields at one level of a selection, counting what inline
 *   fragments and fragment spreads put there (graphql-js compares the fields of a level pairwise
 *   to check they can be merged: 300 fragments each asking for systemStatus held the event loop
 *   for 150 ms of CPU, though the document was valid and cheap to run).
 * - Aliases: at most `maxAliases` fields under another name per operation, counted through
 *   fragments (an alias is how one field is asked for many times in one request).
 * - Depth: the deepest nesting of fields, through fragments. Introspection does not count: tools
 *   send deep but bounded introspection queries.
 * - Cost: each field costs its weight (1 for most) plus its children's cost times the number of
 *   items it can return: its page size (`first`, default 50, the largest page when it is a
 *   variable; PAGE_SIZES for connections paged otherwise), its `limit`, or the most rows the list
 *   can hold (`LIST_ITEMS`). Introspection
 *   counts too, its lists sized by the schema itself.
 *
 * Each fragment is measured once per document and its measure reused at every spread, so the work
 * of this rule grows with the document's size, not with how often its fragments spread each other
 * (fragments spreading the next one twice, 21 deep, once made it walk two million fragments).
 * That work is bounded again by `maxVisits`, should the token limit be raised.
 *
 * The whole document is measured when validation enters it, before graphql-js's own rules have
 * looked past its top: a document that breaks a limit is refused there, and the rest of the
 * validation walks an empty document instead of it (see `queryLimitsRule`).
 */
export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  /** Fields at one level of a selection, fragments included; the default is MAX_BREADTH. */
  maxBreadth?: number;
  /** Selections this rule may look at in one document before it refuses it unmeasured. */
  maxVisits?: number;
}

/**
 * A type's every field (Machine has 38) and the alias limit, with room to spare: a level wider than
 * this repeats itself. Not a setting: it only keeps graphql-js's pairwise comparison of a level's
 * fields cheap (200 fields: about 20,000 pairs).
 */
export const MAX_BREADTH = 200;

/** Far above what a document within the default token limit can hold: selections are tokens. */
const DEFAULT_MAX_VISITS = 100_000;

/** The parser's options: a document with more tokens is refused before it is even parsed whole. */
export function parseOptions(maxTokens: number) {
  return { maxTokens };
}

/**
 * How many items each list of objects that is not paged can return, and why. A list that is a
 * connection is costed by its page size instead. `test/unit/queryLimits.test.ts` fails when a list
 * of objects in the schema is neither paged nor listed here.
 *
 * `bound` says whether the number is a limit the code enforces (the list cannot be longer) or an
 * estimate of a typical list that nothing enforces: those lists grow with a run or a deployment and
 * are the ones to page next; the response size limit stops what they return beyond it.
 */
export const LIST_ITEMS: Record<string, { items: number; bound: 'enforced' | 'estimate'; why: string }> = {
  'Machine.repositoryProblems': { items: MAX_REPOSITORY_PROBLEMS, bound: 'enforced', why: 'an assessment report holds at most this many (agent.schema.ts)' },
  'Assessment.repositoryProblems': { items: MAX_REPOSITORY_PROBLEMS, bound: 'enforced', why: 'an assessment report holds at most this many (agent.schema.ts)' },
  'ComplianceSummary.pendingByClassification': { items: new Set(Object.values(CLASSIFICATIONS_BY_OS).flat()).size, bound: 'enforced', why: 'one per classification' },
  'Mutation.assessMachines': { items: MAX_MACHINE_IDS, bound: 'enforced', why: 'one per machine asked, at most this many per call' },
  'RunProgress.lines': { items: MAX_LINES_PER_EVENT, bound: 'enforced', why: 'one agent event carries at most this many lines' },
  'DeploymentPreview.machines': { items: 20, bound: 'estimate', why: 'one per target machine' },
  'Deployment.rings': { items: MAX_RINGS, bound: 'enforced', why: 'a deployment has at most this many rings (deploymentInput.ts)' },
  'Deployment.steps': { items: MAX_STEPS, bound: 'enforced', why: 'a deployment has at most this many steps (steps.ts)' },
  'HttpStep.headers': { items: MAX_HEADERS, bound: 'enforced', why: 'a call has at most this many headers (steps.ts)' },
  'MachineRun.stepResults': { items: MAX_STEPS, bound: 'enforced', why: "one per step of the deployment" },
  'DeploymentRun.rings': { items: MAX_RINGS, bound: 'enforced', why: "one per ring of the deployment when the run began" },
  'DeploymentPreview.warnings': { items: MAX_RINGS + 1, bound: 'enforced', why: 'one per ring, and one for targets in no ring' },
  'AgentRelease.executables': { items: 3, bound: 'estimate', why: "one per platform in the build's manifest (linux-x64, linux-arm64, windows-x64)" },
  'AgentRelease.packages': { items: 5, bound: 'estimate', why: "the build's manifest: deb and rpm per Linux architecture, and the Windows zip" },
  'AgentVersionSummary.versions': { items: 20, bound: 'estimate', why: 'one per agent version the fleet runs (a few, more during an upgrade)' },
  'Baseline.rules': { items: BASELINE_LIMITS.maxRules, bound: 'enforced', why: 'a baseline has at most this many rules (baselines.ts)' },
  'Baseline.slaTargets': { items: 4, bound: 'enforced', why: 'one per severity at most' },
  'Query.baselines': { items: 20, bound: 'estimate', why: 'one per baseline: a few per OS type (tiers, environments)' },
  'Query.cveImports': { items: 3, bound: 'enforced', why: 'one per source of CVE fixes the imports write: DEBIAN, OSV:DEBIAN, OSV:UBUNTU (trackerImport.ts)' },
  'ComplianceHistory.snapshots': { items: DEFAULT_HISTORY_DAYS, bound: 'estimate', why: `one per day of the range: ${DEFAULT_HISTORY_DAYS} by default, at most ${MAX_HISTORY_DAYS} (complianceHistory.ts)` },
  'ComplianceHistory.series': { items: HISTORY_CLASSIFICATIONS.length, bound: 'estimate', why: `one per group: one for FLEET, one per classification, a few baselines; TAG at most ${MAX_TAG_GROUPS}` },
  'ComplianceHistorySeries.points': { items: DEFAULT_HISTORY_DAYS, bound: 'estimate', why: `one per day of the range with a snapshot: ${DEFAULT_HISTORY_DAYS} by default, at most ${MAX_HISTORY_DAYS}` },
};

/** A list of objects that is in neither table: counted as this many until it is added. */
const UNLISTED_LIST_ITEMS = 100;

/**
 * Fields that cost far more than reading a row, by what they do for each item they resolve.
 * Anything not listed weighs 1.
 */
export const FIELD_WEIGHTS: Record<string, number> = {
  // Pings PostgreSQL and Temporal, each with a timeout: 2,000 copies in one request made Temporal
  // answer late enough that 641 of them said it was down.
  'Query.systemStatus': 100,
  // Plans every target machine from its full list of pending updates.
  'Query.previewDeployment': 500,
  // One Temporal call (describe the schedule) per deployment.
  'Deployment.nextRunAt': 10,
};

interface Measure {
  depth: number;
  cost: number;
  aliases: number;
  /** Fields this selection puts at its own level (its fragments' included). */
  breadth: number;
  /** The most fields at any one level within it, its own included. */
  widest: number;
}

const ZERO: Measure = { depth: 0, cost: 0, aliases: 0, breadth: 0, widest: 0 };

/**
 * The sizes of introspection's lists, from the schema itself: how many types and directives it
 * has, and how many fields, values... a type has on average over all its types (so that a list
 * of every type's fields is costed by the number of fields the schema has, as it answers).
 */
interface IntrospectionSizes {
  types: number;
  directives: number;
  fields: number;
  inputFields: number;
  enumValues: number;
  interfaces: number;
  possibleTypes: number;
  /** Per field (or directive). */
  args: number;
}

const introspectionSizesBySchema = new WeakMap<GraphQLSchema, IntrospectionSizes>();

function introspectionSizes(schema: GraphQLSchema): IntrospectionSizes {
  let sizes = introspectionSizesBySchema.get(schema);
  if (sizes) return sizes;
  const types = Object.values(schema.getTypeMap());
  const perType = (count: (t: GraphQLNamedType) => number) => types.reduce((sum, t) => sum + count(t), 0) / types.length;
  const fields = types.flatMap((t) => (isObjectType(t) || isInterfaceType(t) ? Object.values(t.getFields()) : []));
  const argLists = [...fields.map((f) => f.args.length), ...schema.getDirectives().map((d) => d.args.length)];
  sizes = {
    types: types.length,
    directives: schema.getDirectives().length,
    fields: perType((t) => (isObjectType(t) || isInterfaceType(t) ? Object.keys(t.getFields()).length : 0)),
    inputFields: perType((t) => (isInputObjectType(t) ? Object.keys(t.getFields()).length : 0)),
    enumValues: perType((t) => (isEnumType(t) ? t.getValues().length : 0)),
    interfaces: perType((t) => (isObjectType(t) || isInterfaceType(t) ? t.getInterfaces().length : 0)),
    possibleTypes: perType((t) => (isInterfaceType(t) || isUnionType(t) ? schema.getPossibleTypes(t).length : 0)),
    args: argLists.reduce((a, b) => a + b, 0) / Math.max(1, argLists.length),
  };
  introspectionSizesBySchema.set(schema, sizes);
  return sizes;
}

function introspectionListItems(schema: GraphQLSchema, parent: string, field: string): number | undefined {
  const sizes = introspectionSizes(schema);
  if (parent === '__Schema') return field === 'types' ? sizes.types : field === 'directives' ? sizes.directives : undefined;
  if (parent === '__Type') {
    if (field === 'fields' || field === 'inputFields' || field === 'enumValues' || field === 'interfaces' || field === 'possibleTypes') return sizes[field];
    return undefined;
  }
  if ((parent === '__Field' || parent === '__Directive') && field === 'args') return sizes.args;
  return undefined;
}

/** An integer argument's value: the literal, the largest allowed when it is a variable, the schema's default when absent. */
function intArgument(node: FieldNode, field: GraphQLField<unknown, unknown> | undefined, name: string, largest: number, absent: number | undefined): number | undefined {
  const given = node.arguments?.find((a) => a.name.value === name);
  if (given) return given.value.kind === Kind.INT ? Math.max(0, Math.min(Number(given.value.value), largest)) : largest;
  const declared = field?.args.find((a) => a.name === name);
  if (!declared) return undefined;
  return typeof declared.defaultValue === 'number' ? Math.min(declared.defaultValue, largest) : absent;
}

/** How many items a field may return: 1 unless it is a list or a page. */
function itemsOf(schema: GraphQLSchema, parent: GraphQLNamedType | undefined, node: FieldNode, field: GraphQLField<unknown, unknown> | undefined): number {
  const parentName = parent?.name ?? '';
  const size = PAGE_SIZES[`${parentName}.${node.name.value}`] ?? { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE };
  const page = intArgument(node, field, 'first', size.max, size.default) ?? intArgument(node, field, 'last', size.max, size.default);
  if (page !== undefined) return Math.max(1, page);
  if (!field || !isListType(getNullableType(field.type))) return 1;
  // A connection's edges are already counted by its page size.
  if (parentName.endsWith('Connection') && node.name.value === 'edges') return 1;
  const limit = intArgument(node, field, 'limit', LIST_ITEMS[`${parentName}.${node.name.value}`]?.items ?? UNLISTED_LIST_ITEMS, undefined);
  if (limit !== undefined) return Math.max(1, limit);
  // Averages over the schema's types: fractions, so that the sum over every type comes out right.
  return introspectionListItems(schema, parentName, node.name.value) ?? LIST_ITEMS[`${parentName}.${node.name.value}`]?.items ?? UNLISTED_LIST_ITEMS;
}

class DocumentMeasure {
  visits = 0;
  private readonly fragments = new Map<string, Measure | 'measuring'>();

  constructor(
    private readonly context: ValidationContext,
    private readonly maxVisits: number,
  ) {}

  /** Past the visit budget: stop measuring (the caller reports it). */
  get exhausted(): boolean {
    return this.visits > this.maxVisits;
  }

  operation(operation: OperationDefinitionNode): Measure {
    const schema = this.context.getSchema();
    const root = operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'subscription' ? schema.getSubscriptionType() : schema.getQueryType();
    return this.selections(operation.selectionSet, root ?? undefined, false);
  }

  fragment(name: string): Measure {
    const known = this.fragments.get(name);
    // A fragment that spreads itself is NoFragmentCyclesRule's error; here it adds nothing.
    if (known === 'measuring') return ZERO;
    if (known) return known;
    const definition: FragmentDefinitionNode | null | undefined = this.context.getFragment(name);
    if (!definition) return ZERO;
    this.fragments.set(name, 'measuring');
    const type = this.context.getSchema().getType(definition.typeCondition.name.value) ?? undefined;
    const measured = this.selections(definition.selectionSet, type, type?.name.startsWith('__') ?? false);
    this.fragments.set(name, measured);
    return measured;
  }

  private selections(selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined, introspection: boolean): Measure {
    const schema = this.context.getSchema();
    let depth = 0;
    let cost = 0;
    let aliases = 0;
    let breadth = 0;
    let widest = 0;
    // A fragment spread twice at one level is merged once, by graphql-js and at execution alike.
    const spreadHere = new Set<string>();
    for (const selection of selectionSet.selections) {
      if (++this.visits > this.maxVisits) break;
      let inner: Measure;
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        aliases += selection.alias && selection.alias.value !== name ? 1 : 0;
        breadth += 1;
        if (name === '__typename') {
          cost += 1;
          continue;
        }
        const field = fieldOf(parent, name);
        const inIntrospection = introspection || name.startsWith('__');
        // `__schema` and `__type` are not fields of the query type: their types are introspection's own.
        const childType = name === '__schema' ? schema.getType('__Schema') : name === '__type' ? schema.getType('__Type') : field ? getNamedType(field.type) : undefined;
        const children = selection.selectionSet ? this.selections(selection.selectionSet, childType ?? undefined, inIntrospection) : ZERO;
        const weight = FIELD_WEIGHTS[`${parent?.name ?? ''}.${name}`] ?? 1;
        depth = Math.max(depth, inIntrospection ? 0 : children.depth + 1);
        cost += weight + itemsOf(schema, parent, selection, field) * children.cost;
        aliases += children.aliases;
        widest = Math.max(widest, children.widest);
        continue;
      }
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const typeName = selection.typeCondition?.name.value;
        inner = this.selections(selection.selectionSet, typeName ? (schema.getType(typeName) ?? undefined) : parent, introspection);
      } else {
        inner = this.fragment(selection.name.value);
        if (!spreadHere.has(selection.name.value)) breadth += inner.breadth;
        spreadHere.add(selection.name.value);
        inner = { ...inner, breadth: 0 };
      }
      depth = Math.max(depth, inner.depth);
      cost += inner.cost;
      aliases += inner.aliases;
      breadth += inner.breadth;
      widest = Math.max(widest, inner.widest);
    }
    return { depth, cost, aliases, breadth, widest: Math.max(widest, breadth) };
  }
}

function fieldOf(parent: GraphQLNamedType | undefined, name: string) {
  return isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
}

/**
 * The validation rule enforcing the breadth, alias, depth and cost limits, one error per limit an
 * operation breaks.
 *
 * It measures the document when validation enters it. graphql-js runs every rule in one walk, so a
 * rule cannot keep the others from walking a document; but a visitor may replace the node it
 * enters, and the walk then goes on into the replacement: a document that breaks a limit is
 * replaced by an empty one, and graphql-js's rules (the pairwise comparison of fields above all)
 * never walk it. Nothing else sees the replacement: validation only returns its errors.
 */
export function queryLimitsRule(limits: QueryLimits): ValidationRule {
  const maxVisits = limits.maxVisits ?? DEFAULT_MAX_VISITS;
  const maxBreadth = limits.maxBreadth ?? MAX_BREADTH;
  return (context: ValidationContext): ASTVisitor => ({
    Document(document) {
      const measure = new DocumentMeasure(context, maxVisits);
      let refused = false;
      const refuse = (message: string, node: ASTNode | undefined) => {
        refused = true;
        context.reportError(new GraphQLError(message, { nodes: node ? [node] : [] }));
      };
      for (const operation of document.definitions) {
        if (operation.kind !== Kind.OPERATION_DEFINITION) continue;
        const { depth, aliases, widest, ...measured } = measure.operation(operation);
        const cost = Math.ceil(measured.cost);
        // Fragments spreading each other can reach costs no one wants to read digit by digit.
        const shownCost = cost < 1e12 ? String(cost) : 'over 10^12';
        const name = operation.name ? `Operation "${operation.name.value}"` : 'The operation';
        if (measure.exhausted) {
          refuse(`${name} is too large to measure (more than ${maxVisits} selections, fragments included). Ask for less, or split it into several queries.`, operation);
          break;
        }
        if (widest > maxBreadth) refuse(`${name} asks for ${widest} fields at one level, fragments included; at most ${maxBreadth} are allowed. Ask for each field once.`, operation);
        if (aliases > limits.maxAliases) {
          refuse(`${name} uses ${aliases} aliases; at most ${limits.maxAliases} are allowed (FLEETPATCH_GRAPHQL_MAX_ALIASES). Ask for each field once, or split the request.`, operation);
        }
        if (depth > limits.maxDepth) {
          refuse(`${name} is ${depth} levels deep; at most ${limits.maxDepth} are allowed (FLEETPATCH_GRAPHQL_MAX_DEPTH). Ask for less nesting, or split it into several queries.`, operation);
        }
        if (cost > limits.maxCost) {
          refuse(`${name} has an estimated cost of ${shownCost}; at most ${limits.maxCost} is allowed (FLEETPATCH_GRAPHQL_MAX_COST). Ask for smaller pages (first) or fewer nested lists.`, operation);
        }
      }
      // A fragment no operation spreads runs nowhere (graphql-js says so), but graphql-js would still
      // compare its fields pairwise. One that an operation spreads was measured with it.
      for (const fragment of refused ? [] : document.definitions) {
        if (fragment.kind !== Kind.FRAGMENT_DEFINITION || measure.exhausted) continue;
        const { widest } = measure.fragment(fragment.name.value);
        if (widest > maxBreadth) refuse(`Fragment "${fragment.name.value}" asks for ${widest} fields at one level, fragments included; at most ${maxBreadth} are allowed. Ask for each field once.`, fragment);
      }
      if (!refused && measure.exhausted) refuse(`The document is too large to measure (more than ${maxVisits} selections, fragments included). Ask for less, or split it into several queries.`, document.definitions[0]);
      // Refused: the rest of the validation walks an empty document.
      return refused ? { ...document, definitions: [] } : undefined;
    },
  });
}

/** The limits of one operation, from the API's settings. */
export function queryLimitsOf(limits: Pick<ApiLimits, 'graphqlMaxDepth' | 'graphqlMaxCost' | 'graphqlMaxAliases'>): QueryLimits {
  return { maxDepth: limits.graphqlMaxDepth, maxCost: limits.graphqlMaxCost, maxAliases: limits.graphqlMaxAliases };
}

/** The parser's words for a document past the token limit, said with the setting that sets it; null for any other message. */
export function tokenLimitMessage(message: string): string | null {
  const match = /Document contains more th(?:an|at) (\d+) tokens/.exec(message);
  if (!match) return null;
  return `The document has more than ${match[1]} tokens; at most ${match[1]} are allowed (FLEETPATCH_GRAPHQL_MAX_TOKENS). Ask for less, or split it into several requests.`;
}

/**
 * Apollo's `stringifyResult` with a ceiling: an answer longer than `maxBytes` is replaced by a
 * RESPONSE_TOO_LARGE error. The cost limit keeps answers far below it; this is what holds when an
 * estimate was wrong (a list that grows with a run, a string field of 2,000 CVE ids).
 */
export function boundedResponse(maxBytes: number, onRefused: (bytes: number) => void): (result: unknown) => string {
  const megabytes = (bytes: number) => `${Number((bytes / 1024 / 1024).toFixed(2))} MB`;
  const refusal = (bytes: number | null) => {
    onRefused(bytes ?? Infinity);
    return `${JSON.stringify({
      errors: [
        {
          message: `The answer is ${bytes === null ? 'larger than a string can hold' : megabytes(bytes)}, more than the ${megabytes(maxBytes)} allowed (FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB). Ask for smaller pages (first), fewer fields or fewer aliases.`,
          extensions: { code: 'RESPONSE_TOO_LARGE' },
        },
      ],
    })}\n`;
  };
  return (result) => {
    let text: string;
    try {
      text = JSON.stringify(result);
    } catch (error) {
      // Past V8's longest string.
      if (error instanceof RangeError) return refusal(null);
      throw error;
    }
    // UTF-8 takes at most three bytes per UTF-16 unit: only a long answer needs counting.
    const bytes = text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text);
    return bytes > maxBytes ? refusal(bytes) : `${text}\n`;
  };
}
