import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';

export enum ComplianceHistoryGroupBy {
  FLEET = 'FLEET',
  BASELINE = 'BASELINE',
  CLASSIFICATION = 'CLASSIFICATION',
  TAG = 'TAG',
}
registerEnumType(ComplianceHistoryGroupBy, {
  name: 'ComplianceHistoryGroupBy',
  description: 'How the compliance history is split into series.',
  valuesConfig: {
    FLEET: { description: 'One series: the whole fleet.' },
    BASELINE: { description: 'One series per patch baseline (key: its id; "" for the built-in baseline).' },
    CLASSIFICATION: { description: 'One series per classification: assessed machines missing at least one update of it count as non-compliant.' },
    TAG: { description: 'One series per tag, for the 100 tags most machines carried that day.' },
  },
});

export enum ComplianceSnapshotTrigger {
  SCHEDULE = 'SCHEDULE',
  ON_DEMAND = 'ON_DEMAND',
}
registerEnumType(ComplianceSnapshotTrigger, {
  name: 'ComplianceSnapshotTrigger',
  description: 'What took a compliance snapshot.',
  valuesConfig: { SCHEDULE: { description: 'The daily schedule.' }, ON_DEMAND: { description: 'takeComplianceSnapshot.' } },
});

@ObjectType({ description: "One day's snapshot of the fleet's compliance." })
export class ComplianceSnapshot {
  @Field(() => String, { description: 'The day it belongs to (UTC), as YYYY-MM-DD.' })
  day!: string;

  @Field(() => Date, { description: 'When it was taken: every count is as of this instant.' })
  takenAt!: Date;

  @Field(() => ComplianceSnapshotTrigger, { description: 'What took it.' })
  trigger!: ComplianceSnapshotTrigger;

  @Field(() => Int, { description: 'How long computing it took, in milliseconds.' })
  computeMs!: number;
}

@ObjectType({ description: 'What takeComplianceSnapshot did.' })
export class ComplianceSnapshotResult {
  @Field(() => ComplianceSnapshot, { description: "Today's snapshot, as now stored." })
  snapshot!: ComplianceSnapshot;

  @Field(() => Boolean, { description: 'Whether it replaced a snapshot of the same day (one snapshot per day is kept).' })
  replaced!: boolean;
}

@ObjectType({ description: "One group's counts on one day." })
export class ComplianceHistoryPoint {
  @Field(() => String, { description: 'The day (UTC), as YYYY-MM-DD.' })
  day!: string;

  @Field(() => Int, { description: 'Live machines in the group.' })
  machines!: number;

  @Field(() => Int, { description: 'Machines compliant with their baseline (for a classification: assessed machines missing no update of it).' })
  compliant!: number;

  @Field(() => Int, { description: 'Machines not compliant with their baseline (for a classification: assessed machines missing at least one update of it).' })
  nonCompliant!: number;

  @Field(() => Int, { description: 'Machines without an assessment in the expected time.' })
  notAssessed!: number;

  @Field(() => Float, { nullable: true, description: 'compliant / (compliant + nonCompliant), 0 to 1; null when no machine of the group was assessed.' })
  compliantShare!: number | null;

  @Field(() => Int, { description: 'Machines with an approved update past its SLA due date (for a classification: one of that classification).' })
  overdueMachines!: number;

  @Field(() => Int, { description: 'Approved updates past their SLA due date, summed over machines.' })
  overdueUpdates!: number;

  @Field(() => Int, { description: 'Pending updates, summed over machines (for a classification: of that classification).' })
  pendingUpdates!: number;
}

@ObjectType({ description: "One group's line through the days." })
export class ComplianceHistorySeries {
  @Field(() => String, { description: 'The group: "" for the fleet, a baseline id ("" built-in), a classification or a tag.' })
  key!: string;

  @Field(() => String, { description: "The group's name on the latest day shown." })
  label!: string;

  @Field(() => [ComplianceHistoryPoint], { description: 'One point per day with a snapshot, oldest first: a day without one has no point.' })
  points!: ComplianceHistoryPoint[];
}

@ObjectType({ description: "The fleet's compliance day by day." })
export class ComplianceHistory {
  @Field(() => String, { description: 'The first day asked for.' })
  from!: string;

  @Field(() => String, { description: 'The last day asked for.' })
  to!: string;

  @Field(() => ComplianceHistoryGroupBy, { description: 'How the series are split.' })
  groupBy!: ComplianceHistoryGroupBy;

  @Field(() => [ComplianceSnapshot], { description: 'The snapshots of the range, oldest first.' })
  snapshots!: ComplianceSnapshot[];

  @Field(() => [ComplianceHistorySeries], { description: 'One series per group, by label.' })
  series!: ComplianceHistorySeries[];
}
