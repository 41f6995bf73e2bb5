import { registerEnumType } from 'type-graphql';

export enum OsType {
  LINUX = 'LINUX',
  WINDOWS = 'WINDOWS',
}
registerEnumType(OsType, { name: 'OsType' });

export enum Environment {
  AZURE = 'AZURE',
  AWS = 'AWS',
  GCP = 'GCP',
  ON_PREMISES = 'ON_PREMISES',
}
registerEnumType(Environment, { name: 'Environment', description: 'Where the machine runs, detected by its agent from DMI data.' });

export enum Compliance {
  COMPLIANT = 'COMPLIANT',
  NON_COMPLIANT = 'NON_COMPLIANT',
  NOT_ASSESSED = 'NOT_ASSESSED',
}
registerEnumType(Compliance, {
  name: 'Compliance',
  description: 'COMPLIANT: no missing critical or security update. NON_COMPLIANT: at least one. NOT_ASSESSED: no assessment in the expected time (3 h Linux, 12 h Windows).',
});

export enum AgentReadiness {
  READY = 'READY',
  DISCONNECTED = 'DISCONNECTED',
  NOT_CONFIGURED = 'NOT_CONFIGURED',
}
registerEnumType(AgentReadiness, {
  name: 'AgentReadiness',
  description: 'Update agent readiness. READY: checks in. DISCONNECTED: silent for too long. NOT_CONFIGURED: never checked in, or update management disabled.',
});

export enum Classification {
  CRITICAL = 'CRITICAL',
  SECURITY = 'SECURITY',
  OTHER = 'OTHER',
  UPDATE_ROLLUP = 'UPDATE_ROLLUP',
  FEATURE_PACK = 'FEATURE_PACK',
  SERVICE_PACK = 'SERVICE_PACK',
  DEFINITION = 'DEFINITION',
  TOOLS = 'TOOLS',
  UPDATES = 'UPDATES',
}
registerEnumType(Classification, {
  name: 'Classification',
  description: 'Linux: CRITICAL, SECURITY, OTHER. Windows: CRITICAL, SECURITY, UPDATE_ROLLUP, FEATURE_PACK, SERVICE_PACK, DEFINITION, TOOLS, UPDATES.',
});

export enum Severity {
  CRITICAL = 'CRITICAL',
  IMPORTANT = 'IMPORTANT',
  MODERATE = 'MODERATE',
  LOW = 'LOW',
}
registerEnumType(Severity, { name: 'Severity', description: "The distribution's or vendor's severity rating." });

export enum SortDirection {
  ASC = 'ASC',
  DESC = 'DESC',
}
registerEnumType(SortDirection, { name: 'SortDirection' });
