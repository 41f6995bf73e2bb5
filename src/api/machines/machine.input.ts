import { Field, InputType, registerEnumType } from 'type-graphql';
import { AgentReadiness, Classification, Compliance, OsType, SortDirection } from './machine.enums.js';

@InputType({ description: 'Machines matching every given condition.' })
export class MachineFilter {
  @Field(() => [Compliance], { nullable: true })
  compliance?: Compliance[];

  @Field(() => [AgentReadiness], { nullable: true })
  readiness?: AgentReadiness[];

  @Field(() => OsType, { nullable: true })
  osType?: OsType;

  @Field(() => [String], { nullable: true, description: 'Machines carrying every one of these tags.' })
  tags?: string[];

  @Field(() => String, { nullable: true, description: 'Case-insensitive part of the name.' })
  nameContains?: string;
}

export enum MachineSortField {
  NAME = 'NAME',
  COMPLIANCE = 'COMPLIANCE',
  CRITICAL_AND_SECURITY_COUNT = 'CRITICAL_AND_SECURITY_COUNT',
  OTHER_COUNT = 'OTHER_COUNT',
  LAST_SEEN = 'LAST_SEEN',
  LAST_ASSESSED = 'LAST_ASSESSED',
}
registerEnumType(MachineSortField, {
  name: 'MachineSortField',
  description: 'COMPLIANCE ascending lists NON_COMPLIANT first, then NOT_ASSESSED, then COMPLIANT.',
});

@InputType()
export class MachineOrder {
  @Field(() => MachineSortField)
  field!: MachineSortField;

  @Field(() => SortDirection, { defaultValue: SortDirection.ASC })
  direction!: SortDirection;
}

@InputType()
export class MissingUpdateFilter {
  @Field(() => [Classification], { nullable: true })
  classification?: Classification[];

  @Field(() => OsType, { nullable: true })
  osType?: OsType;

  @Field(() => String, { nullable: true })
  nameContains?: string;
}
