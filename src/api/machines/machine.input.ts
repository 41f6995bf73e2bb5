import { Field, InputType, registerEnumType } from 'type-graphql';
import { AgentReadiness, Classification, Compliance, OsType, SortDirection } from './machine.enums.js';

@InputType({ description: 'Machines matching every given condition.' })
export class MachineFilter {
  @Field(() => [Compliance], { description: 'Machines in this compliance state.', nullable: true })
  compliance?: Compliance[];

  @Field(() => [AgentReadiness], { description: 'Machines whose agent is in this readiness state.', nullable: true })
  readiness?: AgentReadiness[];

  @Field(() => OsType, { description: 'Machines of this operating system family.', nullable: true })
  osType?: OsType;

  @Field(() => [String], { nullable: true, description: 'Machines carrying every one of these tags.' })
  tags?: string[];

  @Field(() => String, { nullable: true, description: 'Case-insensitive part of the name.' })
  nameContains?: string;

  @Field(() => Boolean, { nullable: true, description: "true: machines with an approved update past its SLA due date (see their baseline's slaTargets); false: machines without one." })
  overdue?: boolean;
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
  description: 'COMPLIANCE ascending lists NON_COMPLIANT first, then NOT_ASSESSED, then COMPLIANT.', valuesConfig: { COMPLIANCE: { description: 'Compliance state.' }, CRITICAL_AND_SECURITY_COUNT: { description: 'Pending critical and security updates.' }, LAST_ASSESSED: { description: 'Time of the latest assessment.' }, LAST_SEEN: { description: 'Time of the last check-in.' }, NAME: { description: 'Name.' }, OTHER_COUNT: { description: 'Other pending updates.' } } });

@InputType({ description: 'How to sort machines: a field and a direction.' })
export class MachineOrder {
  @Field(() => MachineSortField, { description: 'What to sort by.' })
  field!: MachineSortField;

  @Field(() => SortDirection, { description: 'ASC or DESC.', defaultValue: SortDirection.ASC })
  direction!: SortDirection;
}

@InputType({ description: 'Which missing updates to list; every given condition must hold.' })
export class MissingUpdateFilter {
  @Field(() => [Classification], { description: 'Updates of these classifications.', nullable: true })
  classification?: Classification[];

  @Field(() => OsType, { description: 'Updates missing on machines of this operating system family.', nullable: true })
  osType?: OsType;

  @Field(() => String, { description: 'Updates whose name contains this text (ignoring case).', nullable: true })
  nameContains?: string;
}
