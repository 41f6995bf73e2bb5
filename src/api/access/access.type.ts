import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { ConnectionType } from '../relay.js';
import { Node } from '../node/node.type.js';

export enum Role {
  VIEWER = 'VIEWER',
  OPERATOR = 'OPERATOR',
  ADMIN = 'ADMIN',
}
registerEnumType(Role, { name: 'Role', description: 'VIEWER reads and subscribes; OPERATOR also runs assessments and deployments; ADMIN also manages enrollment keys, tokens and machine removal.', valuesConfig: { ADMIN: { description: 'Everything, including tokens, enrollment keys and the audit log.' }, OPERATOR: { description: 'Also runs assessments and deployments.' }, VIEWER: { description: 'Reads and subscribes.' } } });

export enum ApiTokenState {
  ACTIVE = 'ACTIVE',
  REVOKED = 'REVOKED',
  EXPIRED = 'EXPIRED',
}
registerEnumType(ApiTokenState, { name: 'ApiTokenState', description: 'Whether an API token is accepted now.', valuesConfig: { ACTIVE: { description: 'Accepted.' }, EXPIRED: { description: 'Past its expiry: refused.' }, REVOKED: { description: 'Revoked: refused.' } } });

@ObjectType({ implements: Node, description: 'An API token, without its secret (shown only at creation; the server keeps a hash).' })
export class ApiToken {
  @Field(() => ID, { description: "The token's id (not its secret)." })
  id!: string;

  @Field(() => String, { description: 'What the token is for, as given when it was created.' })
  name!: string;

  @Field(() => Role, { description: 'What the token may do.' })
  role!: Role;

  @Field(() => Date, { description: 'When the token was created.' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'null: never expires.' })
  expiresAt!: Date | null;

  @Field(() => Date, { description: 'When it was revoked (null: not revoked).', nullable: true })
  revokedAt!: Date | null;

  @Field(() => Date, { description: 'When a request last used it (null: never).', nullable: true })
  lastUsedAt!: Date | null;
}

@ObjectType({ description: 'A token just created, with its secret (shown this once).' })
export class CreatedApiToken {
  @Field(() => ApiToken, { description: 'The token as listings show it, without its secret.' })
  token!: ApiToken;

  @Field(() => String, { description: 'The bearer token ("Authorization: Bearer <secret>"). Shown this once.' })
  secret!: string;
}

@InputType({ description: 'A new API token: its name, role and expiry.' })
export class CreateApiTokenInput {
  @Field(() => String, { description: 'What the token is for (1 to 200 characters): it names the token in listings and the audit log.' })
  name!: string;

  @Field(() => Role, { description: 'What the token may do.' })
  role!: Role;

  @Field(() => Date, { nullable: true, description: 'After this time the token is refused (at most 3650 days ahead). null: never.' })
  expiresAt?: Date | null;
}

@ObjectType({ description: 'One audited action: a mutation or an enrollment, who did it, when, from where, and how it ended.' })
export class AuditEvent {
  @Field(() => ID, { description: "The event's id." })
  id!: string;

  @Field(() => Date, { description: 'When it happened.' })
  at!: Date;

  @Field(() => String, { description: 'TOKEN, MACHINE, ENROLLMENT_KEY, ANONYMOUS or CLI.' })
  actorKind!: string;

  @Field(() => String, { nullable: true, description: 'The token, machine or enrollment key id.' })
  actorId!: string | null;

  @Field(() => String, { nullable: true, description: 'The token name or machine hostname at the time.' })
  actorName!: string | null;

  @Field(() => String, { description: "The actor's role at the time (null for machines and anonymous callers).", nullable: true })
  actorRole!: string | null;

  @Field(() => String, { description: 'The mutation name (createDeployment) or event (enrollMachine, token.create).' })
  action!: string;

  @Field(() => String, { nullable: true, description: 'The id the action was about; it stays when that thing is deleted.' })
  targetId!: string | null;

  @Field(() => GraphQLJSONObject, { description: 'The arguments, secrets replaced by "[REDACTED]".' })
  details!: unknown;

  @Field(() => String, { description: 'SUCCEEDED, or the error code the caller got.' })
  outcome!: string;

  @Field(() => String, { description: 'The IP address the request came from.', nullable: true })
  sourceAddress!: string | null;
}

export const AuditEventConnection = ConnectionType('AuditEvent', AuditEvent, 'audit events');
export const ApiTokenConnection = ConnectionType('ApiToken', ApiToken, 'API tokens');

@InputType({ description: 'Which audit events to list; every given condition must hold.' })
export class AuditEventFilter {
  @Field(() => String, { description: 'Events of this action (mutation or event name).', nullable: true })
  action?: string | null;

  @Field(() => ID, { description: 'Events about this object.', nullable: true })
  targetId?: string | null;

  @Field(() => ID, { description: 'Events by this token, machine or key.', nullable: true })
  actorId?: string | null;
}
