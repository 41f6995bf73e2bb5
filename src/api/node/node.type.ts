import { Field, ID, InterfaceType } from 'type-graphql';

/** Where node(id:) puts the type it found on the row it returns, for resolveType. */
export const NODE_TYPE = Symbol('nodeType');

/**
 * Relay's global object identification: every type with an id of its own implements Node, and
 * node(id:) finds any of them from the id alone. The id is the object's UUID (what every query and
 * argument already uses): PostgreSQL draws it at random for each row, so it is unique across types
 * too, and no id changed. See docs/graphql.md.
 */
@InterfaceType({
  description: 'An object with an id that node(id:) finds again (global object identification): clients such as Relay and Apollo refetch by it.',
  resolveType: (value: { [NODE_TYPE]?: string }) => value[NODE_TYPE],
})
export abstract class Node {
  @Field(() => ID, { description: 'The global id: a UUID, unique across every type.' })
  id!: string;
}
