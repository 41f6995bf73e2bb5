import { Field, ObjectType, registerEnumType } from 'type-graphql';

export enum ExportKind {
  COMPUTERS = 'COMPUTERS',
  MISSING_UPDATES = 'MISSING_UPDATES',
  RUN_RESULTS = 'RUN_RESULTS',
  COMPLIANCE_HISTORY = 'COMPLIANCE_HISTORY',
}
registerEnumType(ExportKind, {
  name: 'ExportKind',
  description: 'What an export holds.',
  valuesConfig: {
    COMPUTERS: { description: 'The computers view: every live machine with its compliance, readiness and counts.' },
    MISSING_UPDATES: { description: 'Every update every live machine misses (its latest assessment), one row per machine and update.' },
    RUN_RESULTS: { description: "A deployment run's result for every update on every machine (give runId)." },
    COMPLIANCE_HISTORY: { description: 'The compliance history, one row per group and day, as complianceHistory answers it (give from, to and groupBy as to complianceHistory).' },
  },
});

export enum ExportFormat {
  CSV = 'CSV',
  JSON = 'JSON',
}
registerEnumType(ExportFormat, {
  name: 'ExportFormat',
  description: 'The file format of an export.',
  valuesConfig: { CSV: { description: 'RFC 4180 CSV with a header line; lists joined with "; ".' }, JSON: { description: 'One JSON array of objects.' } },
});

@ObjectType({ description: 'A signed link that downloads an export, streamed as it is read, for a few minutes.' })
export class ExportLink {
  @Field(() => String, { description: 'GET it (no Authorization header needed): the link is the credential until expiresAt, so treat it as a secret.' })
  url!: string;

  @Field(() => Date, { description: 'When the link stops working (its download, once started, runs to its end).' })
  expiresAt!: Date;

  @Field(() => String, { description: 'The file name it downloads as.' })
  fileName!: string;
}
