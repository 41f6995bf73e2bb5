import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';

export enum EnrollmentKeyState {
  ACTIVE = 'ACTIVE',
  REVOKED = 'REVOKED',
  EXPIRED = 'EXPIRED',
  USED_UP = 'USED_UP',
}
registerEnumType(EnrollmentKeyState, { name: 'EnrollmentKeyState' });

@ObjectType({ description: 'A key agents present once to enroll their machine. Its secret is shown only at creation.' })
export class EnrollmentKey {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  description!: string;

  @Field(() => [String], { description: 'Tags every machine enrolled with this key starts with.' })
  defaultTags!: string[];

  @Field(() => Int, { nullable: true, description: 'How many machines may enroll with it; null: no limit.' })
  maxUses!: number | null;

  @Field(() => Int)
  useCount!: number;

  @Field(() => Date, { nullable: true })
  expiresAt!: Date | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;
}

@ObjectType()
export class CreatedEnrollmentKey {
  @Field(() => EnrollmentKey)
  key!: EnrollmentKey;

  @Field(() => String, { description: 'The key itself, for `fleetpatch agent run --enroll-key`. Shown this once; the server keeps only a hash.' })
  secret!: string;
}

@InputType()
export class CreateEnrollmentKeyInput {
  @Field(() => String, { description: 'What the key is for (1 to 200 characters).' })
  description!: string;

  @Field(() => Date, { nullable: true, description: 'After this time the key is refused. Must be in the future.' })
  expiresAt?: Date | null;

  @Field(() => Int, { nullable: true, description: 'How many machines may enroll with it (1 to 1,000,000); null: no limit.' })
  maxUses?: number | null;

  @Field(() => [String], { nullable: true })
  defaultTags?: string[];
}
