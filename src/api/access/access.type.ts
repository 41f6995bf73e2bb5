import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { ConnectionType } from '../relay.js';
import { Node } from '../node/node.type.js';

export enum Role {
  VIEWER = 'VIEWER',
  OPERATOR = 'OPERATOR',
  ADMIN = 'ADMIN',
}
registerEnumType(Role, { name: 'Role', description: 'VIEWER reads and subscribes; OPERATOR also runs assessments and deployments; ADMIN also manages enrollment keys, tokens and machine removal.' });

export enum ApiTokenState {
  ACTIVE = 'ACTIVE',
  REVOKED = 'REVOKED',
  EXPIRED = 'EXPIRED',
}
registerEnumType(ApiTokenState, { name: 'ApiTokenState' });

@ObjectType({ implements: Node, description: 'An API token, without its secret (shown only at creation; the server keeps a hash).' })
export class ApiToken {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => Role)
  role!: Role;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'null: never expires.' })
  expiresAt!: Date | null;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  lastUsedAt!: Date | null;
}

@ObjectType()
export class CreatedApiToken {
  @Field(() => ApiToken)
  token!: ApiToken;

  @Field(() => String, { description: 'The bearer token ("Authorization: Bearer <secret>"). Shown this once.' })
  secret!: string;
}

@InputType()
export class CreateApiTokenInput {
  @Field(() => String, { description: 'What the token is for (1 to 200 characters): it names the token in listings and the audit log.' })
  name!: string;

  @Field(() => Role)
  role!: Role;

  @Field(() => Date, { nullable: true, description: 'After this time the token is refused (at most 3650 days ahead). null: never.' })
  expiresAt?: Date | null;
}

@ObjectType({ description: 'One audited action: a mutation or an enrollment, who did it, when, from where, and how it ended.' })
export class AuditEvent {
  @Field(() => ID)
  id!: string;

  @Field(() => Date)
  at!: Date;

  @Field(() => String, { description: 'TOKEN, MACHINE, ENROLLMENT_KEY, ANONYMOUS or CLI.' })
  actorKind!: string;

  @Field(() => String, { nullable: true, description: 'The token, machine or enrollment key id.' })
  actorId!: string | null;

  @Field(() => String, { nullable: true, description: 'The token name or machine hostname at the time.' })
  actorName!: string | null;

  @Field(() => String, { nullable: true })
  actorRole!: string | null;

  @Field(() => String, { description: 'The mutation name (createDeployment) or event (enrollMachine, token.create).' })
  action!: string;

  @Field(() => String, { nullable: true, description: 'The id the action was about; it stays when that thing is deleted.' })
  targetId!: string | null;

  @Field(() => GraphQLJSONObject, { description: 'The arguments, secrets replaced by "[REDACTED]".' })
  details!: unknown;

  @Field(() => String, { description: 'SUCCEEDED, or the error code the caller got.' })
  outcome!: string;

  @Field(() => String, { nullable: true })
  sourceAddress!: string | null;
}

export const AuditEventConnection = ConnectionType('AuditEvent', AuditEvent, 'audit events');
export const ApiTokenConnection = ConnectionType('ApiToken', ApiToken, 'API tokens');

@InputType()
export class AuditEventFilter {
  @Field(() => String, { nullable: true })
  action?: string | null;

  @Field(() => ID, { nullable: true })
  targetId?: string | null;

  @Field(() => ID, { nullable: true })
  actorId?: string | null;
}
