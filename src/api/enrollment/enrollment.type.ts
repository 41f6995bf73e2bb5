import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ConnectionType } from '../relay.js';
import { Node } from '../node/node.type.js';

export enum EnrollmentKeyState {
  ACTIVE = 'ACTIVE',
  REVOKED = 'REVOKED',
  EXPIRED = 'EXPIRED',
  USED_UP = 'USED_UP',
}
registerEnumType(EnrollmentKeyState, { name: 'EnrollmentKeyState', description: 'Whether an enrollment key still enrolls machines.', valuesConfig: { ACTIVE: { description: 'Enrolls machines.' }, EXPIRED: { description: 'Past its expiry: refused.' }, REVOKED: { description: 'Revoked: refused.' }, USED_UP: { description: 'It has enrolled as many machines as it may.' } } });

@ObjectType({ implements: Node, description: 'A key agents present once to enroll their machine. Its secret is shown only at creation.' })
export class EnrollmentKey {
  @Field(() => ID, { description: "The key's id (not its secret)." })
  id!: string;

  @Field(() => String, { description: 'What the key is for, as given when it was created.' })
  description!: string;

  @Field(() => [String], { description: 'Tags every machine enrolled with this key starts with.' })
  defaultTags!: string[];

  @Field(() => Int, { nullable: true, description: 'How many machines may enroll with it; null: no limit (created with unlimitedUses).' })
  maxUses!: number | null;

  @Field(() => Int, { description: 'How many machines have enrolled with it.' })
  useCount!: number;

  @Field(() => Date, { nullable: true, description: 'When a machine last enrolled with it; null: never used.' })
  lastUsedAt!: Date | null;

  @Field(() => Date, { nullable: true, description: 'After this time it is refused; null: never (created with neverExpires).' })
  expiresAt!: Date | null;

  @Field(() => Date, { description: 'When the key was created.' })
  createdAt!: Date;

  @Field(() => Date, { description: 'When it was revoked (null: not revoked).', nullable: true })
  revokedAt!: Date | null;
}

export const EnrollmentKeyConnection = ConnectionType('EnrollmentKey', EnrollmentKey, 'enrollment keys');

@ObjectType({ description: 'An enrollment key just created, with its secret (shown this once).' })
export class CreatedEnrollmentKey {
  @Field(() => EnrollmentKey, { description: 'The key as listings show it, without its secret.' })
  key!: EnrollmentKey;

  @Field(() => String, { description: 'The key itself, for `fleetpatch agent run --enroll-key`. Shown this once; the server keeps only a hash.' })
  secret!: string;
}

@InputType({ description: 'A new enrollment key: what it is for, its expiry, its uses and the tags it gives.' })
export class CreateEnrollmentKeyInput {
  @Field(() => String, { description: 'What the key is for (1 to 200 characters).' })
  description!: string;

  @Field(() => Date, { nullable: true, description: 'After this time the key is refused. Must be in the future. Not given: 24 hours from now (see neverExpires).' })
  expiresAt?: Date | null;

  @Field(() => Boolean, { nullable: true, description: 'true: the key never expires. Say so explicitly, instead of giving expiresAt; a key that never expires is worth the most to whoever it leaks to.' })
  neverExpires?: boolean | null;

  @Field(() => Int, { nullable: true, description: 'How many machines may enroll with it (1 to 1,000,000). Not given: 10 (see unlimitedUses).' })
  maxUses?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'true: any number of machines may enroll with it. Say so explicitly, instead of giving maxUses.' })
  unlimitedUses?: boolean | null;

  @Field(() => [String], { description: 'Tags every machine enrolled with the key gets.', nullable: true })
  defaultTags?: string[];
}
