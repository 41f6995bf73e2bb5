import { Field, ID, Int, ObjectType } from 'type-graphql';
import { Classification, OsType, Severity } from '../machines/machine.enums.js';

@ObjectType({ description: 'Approves updates of these classifications and severities, a number of days after their clock (advisory issue date, else first seen).' })
export class ApprovalRule {
  @Field(() => [Classification], { description: 'The classifications it approves (empty: any).' })
  classifications!: Classification[];

  @Field(() => [Severity], { description: 'The severities it approves (empty: any, updates without a severity included).' })
  severities!: Severity[];

  @Field(() => Int, { description: "Approved from the start of this many calendar days after the update's clock, in the baseline's time zone (0: at once)." })
  delayDays!: number;
}

@ObjectType({ description: 'An SLA target: approved updates of this severity are due by the end of this many days after their clock.' })
export class SlaTarget {
  @Field(() => Severity, { description: 'The severity.' })
  severity!: Severity;

  @Field(() => Int, { description: "Days, counted in the baseline's time zone." })
  days!: number;
}

@ObjectType({ description: 'A patch baseline: which updates the machines it reaches must have installed, and by when.' })
export class Baseline {
  @Field(() => ID, { description: 'Its id (null on the built-in baseline).', nullable: true })
  id!: string | null;

  @Field(() => String, { description: 'Its unique name.' })
  name!: string;

  @Field(() => OsType, { description: 'The OS type of the machines it reaches.' })
  osType!: OsType;

  @Field(() => [String], { description: 'It reaches machines carrying every one of these tags (empty: every machine of its OS type).' })
  tags!: string[];

  @Field(() => Int, { description: 'When several baselines reach a machine: the higher priority wins, then the one with more tags, then the first by name.' })
  priority!: number;

  @Field(() => [ApprovalRule], { description: 'Approval rules: an update is approved from the earliest time a matching rule gives.' })
  rules!: ApprovalRule[];

  @Field(() => [String], { description: 'Always approved (package names with * and ?, name=version, KB ids), from their first day.' })
  approvedPatterns!: string[];

  @Field(() => [String], { description: 'Never installed, by any deployment, and never counted against compliance; wins over everything else.' })
  rejectedPatterns!: string[];

  @Field(() => [SlaTarget], { description: 'SLA targets per severity.' })
  slaTargets!: SlaTarget[];

  @Field(() => String, { description: 'The IANA time zone its days are counted in.' })
  timeZone!: string;

  @Field(() => Boolean, { description: 'The built-in baseline (every critical and security update approved at once, no SLA) of machines no baseline reaches.' })
  builtIn!: boolean;
}
