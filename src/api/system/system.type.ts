import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { Node } from '../node/node.type.js';

export enum ComponentState {
  UP = 'UP',
  DOWN = 'DOWN',
}
registerEnumType(ComponentState, { name: 'ComponentState', description: 'Whether a part fleetpatch depends on answers.', valuesConfig: { DOWN: { description: 'It does not answer.' }, UP: { description: 'It answers.' } } });

@ObjectType({ description: 'One part fleetpatch depends on, and whether it answers.' })
export class ComponentStatus {
  @Field(() => ComponentState, { description: 'UP when it answers, DOWN when it does not.' })
  state!: ComponentState;

  @Field(() => String, { nullable: true, description: 'Why the part is down.' })
  error!: string | null;
}

@ObjectType({ implements: Node, description: 'A worker self-check: a workflow that waits on a durable timer, then records which worker completed it.' })
export class SelfCheck {
  @Field(() => ID, { description: "The self-check's id." })
  id!: string;

  @Field(() => Date, { description: 'When it was requested.' })
  requestedAt!: Date;

  @Field(() => Date, { description: 'When a worker completed it (null: not yet).', nullable: true })
  completedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'The worker that completed the check.' })
  workerIdentity!: string | null;
}

@ObjectType({ description: 'The health of the fleetpatch installation.' })
export class SystemStatus {
  @Field(() => String, { description: 'The version of fleetpatch that answers.' })
  version!: string;

  @Field(() => ComponentStatus, { description: 'Whether PostgreSQL answers.' })
  database!: ComponentStatus;

  @Field(() => ComponentStatus, { description: 'Whether Temporal answers.' })
  temporal!: ComponentStatus;

  @Field(() => SelfCheck, { nullable: true, description: 'The last self-check a worker completed: proof that workers run.' })
  lastSelfCheck!: SelfCheck | null;
}
