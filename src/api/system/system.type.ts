import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { Node } from '../node/node.type.js';

export enum ComponentState {
  UP = 'UP',
  DOWN = 'DOWN',
}
registerEnumType(ComponentState, { name: 'ComponentState', description: 'Whether a part fleetpatch depends on answers.' });

@ObjectType({ description: 'One part fleetpatch depends on, and whether it answers.' })
export class ComponentStatus {
  @Field(() => ComponentState)
  state!: ComponentState;

  @Field(() => String, { nullable: true, description: 'Why the part is down.' })
  error!: string | null;
}

@ObjectType({ implements: Node, description: 'A worker self-check: a workflow that waits on a durable timer, then records which worker completed it.' })
export class SelfCheck {
  @Field(() => ID)
  id!: string;

  @Field(() => Date)
  requestedAt!: Date;

  @Field(() => Date, { nullable: true })
  completedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'The worker that completed the check.' })
  workerIdentity!: string | null;
}

@ObjectType({ description: 'The health of the fleetpatch installation.' })
export class SystemStatus {
  @Field(() => String)
  version!: string;

  @Field(() => ComponentStatus)
  database!: ComponentStatus;

  @Field(() => ComponentStatus)
  temporal!: ComponentStatus;

  @Field(() => SelfCheck, { nullable: true, description: 'The last self-check a worker completed: proof that workers run.' })
  lastSelfCheck!: SelfCheck | null;
}
