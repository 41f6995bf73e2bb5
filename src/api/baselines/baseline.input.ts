import { Field, InputType, Int } from 'type-graphql';
import { Classification, OsType, Severity } from '../machines/machine.enums.js';

@InputType({ description: 'An approval rule.' })
export class ApprovalRuleInput {
  @Field(() => [Classification], { defaultValue: [], description: 'Classifications it approves (empty: any).' })
  classifications!: Classification[];

  @Field(() => [Severity], { defaultValue: [], description: 'Severities it approves (empty: any).' })
  severities!: Severity[];

  @Field(() => Int, { defaultValue: 0, description: "Days after the update's clock (0 to 365)." })
  delayDays!: number;
}

@InputType({ description: 'An SLA target.' })
export class SlaTargetInput {
  @Field(() => Severity, { description: 'The severity.' })
  severity!: Severity;

  @Field(() => Int, { description: 'Days (1 to 365).' })
  days!: number;
}

@InputType({ description: 'A patch baseline as entered.' })
export class BaselineInput {
  @Field(() => String, { description: 'A unique name: 1 to 64 letters, digits, spaces and . _ : ( ) -.' })
  name!: string;

  @Field(() => OsType, { description: 'The OS type of the machines it reaches.' })
  osType!: OsType;

  @Field(() => [String], { defaultValue: [], description: 'Machines carrying every one of these tags get it (empty: every machine of its OS type). Tags no machine carries yet are fine.' })
  tags!: string[];

  @Field(() => Int, { defaultValue: 0, description: 'Precedence between baselines that reach the same machine (-1000 to 1000; higher wins).' })
  priority!: number;

  @Field(() => [ApprovalRuleInput], { defaultValue: [], description: 'Approval rules (at most 20).' })
  rules!: ApprovalRuleInput[];

  @Field(() => [String], { defaultValue: [], description: 'Always approved: package names with * and ?, name=version, KB ids on Windows.' })
  approvedPatterns!: string[];

  @Field(() => [String], { defaultValue: [], description: 'Never installed: package names with * and ?, name=version, KB ids on Windows.' })
  rejectedPatterns!: string[];

  @Field(() => [SlaTargetInput], { defaultValue: [], description: 'SLA targets, one per severity at most.' })
  slaTargets!: SlaTargetInput[];

  @Field(() => String, { defaultValue: 'UTC', description: 'The IANA time zone its days are counted in.' })
  timeZone!: string;
}
