import {
  GraphQLError,
  getNamedType,
  getNullableType,
  isListType,
  Kind,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLOutputType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  isObjectType,
  isInterfaceType,
} from 'graphql';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './pageSize.js';

/**
 * Depth and cost limits, checked while the query is validated: before any resolver runs, one
 * request cannot ask for the whole fleet's every update of every run.
 *
 * The cost of a field is 1 plus its children's cost times how many items it may return: its
 * `first` argument (the page size limit when it is a variable, the default page size when it is
 * absent), or a fixed guess for a list without paging. Introspection (`__schema`, `__type`) is
 * left out: it is bounded by the schema, and tools send deep introspection queries.
 */
export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
}

/** A list without paging (a machine's pending updates, a run's machines): counted as this many items. */
const UNPAGED_LIST_ITEMS = 10;

interface Measure {
  depth: number;
  cost: number;
}

function fieldMultiplier(node: FieldNode, field: GraphQLField<unknown, unknown> | undefined, type: GraphQLOutputType | undefined): number {
  const first = node.arguments?.find((a) => a.name.value === 'first' || a.name.value === 'last');
  if (first) {
    if (first.value.kind === Kind.INT) return Math.max(1, Math.min(Number(first.value.value), MAX_PAGE_SIZE));
    return MAX_PAGE_SIZE;
  }
  if (field?.args.some((a) => a.name === 'first')) return DEFAULT_PAGE_SIZE;
  // A connection's edges are already counted by its page size.
  if (type && isListType(getNullableType(type)) && node.name.value !== 'edges') return UNPAGED_LIST_ITEMS;
  return 1;
}

function measure(context: ValidationContext, selectionSet: SelectionSetNode, parentType: unknown, fragmentsSeen: Set<string>): Measure {
  let depth = 0;
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (name.startsWith('__')) continue;
      const field = isObjectType(parentType) || isInterfaceType(parentType) ? parentType.getFields()[name] : undefined;
      const childType = field ? getNamedType(field.type) : undefined;
      const inner = selection.selectionSet ? measure(context, selection.selectionSet, childType, fragmentsSeen) : { depth: 0, cost: 0 };
      depth = Math.max(depth, inner.depth + 1);
      cost += 1 + fieldMultiplier(selection, field, field?.type) * inner.cost;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const typeName = selection.typeCondition?.name.value;
      const inner = measure(context, selection.selectionSet, typeName ? context.getSchema().getType(typeName) : parentType, fragmentsSeen);
      depth = Math.max(depth, inner.depth);
      cost += inner.cost;
    } else {
      const name = selection.name.value;
      // A fragment cycle is its own validation error (NoFragmentCyclesRule); do not loop on it.
      if (fragmentsSeen.has(name)) continue;
      const fragment: FragmentDefinitionNode | null | undefined = context.getFragment(name);
      if (!fragment) continue;
      const inner = measure(context, fragment.selectionSet, context.getSchema().getType(fragment.typeCondition.name.value), new Set([...fragmentsSeen, name]));
      depth = Math.max(depth, inner.depth);
      cost += inner.cost;
    }
  }
  return { depth, cost };
}

function rootType(context: ValidationContext, operation: OperationDefinitionNode) {
  const schema = context.getSchema();
  if (operation.operation === 'mutation') return schema.getMutationType();
  if (operation.operation === 'subscription') return schema.getSubscriptionType();
  return schema.getQueryType();
}

/** The validation rule enforcing both limits, one error per operation that breaks one. */
export function queryLimitsRule(limits: QueryLimits): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(operation) {
      const { depth, cost } = measure(context, operation.selectionSet, rootType(context, operation), new Set());
      const name = operation.name ? `Operation "${operation.name.value}"` : 'The operation';
      if (depth > limits.maxDepth) {
        context.reportError(
          new GraphQLError(`${name} is ${depth} levels deep; at most ${limits.maxDepth} are allowed (FLEETPATCH_GRAPHQL_MAX_DEPTH). Ask for less nesting, or split it into several queries.`, { nodes: [operation] }),
        );
      }
      if (cost > limits.maxCost) {
        context.reportError(
          new GraphQLError(`${name} has an estimated cost of ${cost}; at most ${limits.maxCost} is allowed (FLEETPATCH_GRAPHQL_MAX_COST). Ask for smaller pages (first) or fewer nested lists.`, { nodes: [operation] }),
        );
      }
    },
  });
}

