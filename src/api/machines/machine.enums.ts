import { registerEnumType } from 'type-graphql';

export enum OsType {
  LINUX = 'LINUX',
  WINDOWS = 'WINDOWS',
}
registerEnumType(OsType, { name: 'OsType', description: 'The family of operating system a machine runs.', valuesConfig: { LINUX: { description: 'Linux (apt, dnf or zypper).' }, WINDOWS: { description: 'Windows (Windows Update).' } } });

export enum Environment {
  AZURE = 'AZURE',
  AWS = 'AWS',
  GCP = 'GCP',
  ON_PREMISES = 'ON_PREMISES',
}
registerEnumType(Environment, { name: 'Environment', description: 'Where the machine runs, detected by its agent from DMI data.', valuesConfig: { AWS: { description: 'Amazon Web Services.' }, AZURE: { description: 'Microsoft Azure.' }, GCP: { description: 'Google Cloud.' }, ON_PREMISES: { description: 'No cloud detected.' } } });

export enum Compliance {
  COMPLIANT = 'COMPLIANT',
  NON_COMPLIANT = 'NON_COMPLIANT',
  NOT_ASSESSED = 'NOT_ASSESSED',
}
registerEnumType(Compliance, {
  name: 'Compliance',
  description: 'COMPLIANT: no missing critical or security update. NON_COMPLIANT: at least one. NOT_ASSESSED: no assessment in the expected time (3 h Linux, 12 h Windows).', valuesConfig: { COMPLIANT: { description: 'No missing critical or security update.' }, NON_COMPLIANT: { description: 'At least one missing critical or security update.' }, NOT_ASSESSED: { description: 'No assessment in the expected time (3 h Linux, 12 h Windows).' } } });

export enum AgentReadiness {
  READY = 'READY',
  DISCONNECTED = 'DISCONNECTED',
  NOT_CONFIGURED = 'NOT_CONFIGURED',
}
registerEnumType(AgentReadiness, {
  name: 'AgentReadiness',
  description: 'Update agent readiness. READY: checks in. DISCONNECTED: silent for too long. NOT_CONFIGURED: never checked in, or update management disabled.', valuesConfig: { DISCONNECTED: { description: 'The agent has been silent for too long.' }, NOT_CONFIGURED: { description: 'The agent never checked in, or update management is disabled.' }, READY: { description: 'The agent checks in.' } } });

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
  description: 'Linux: CRITICAL, SECURITY, OTHER. Windows: CRITICAL, SECURITY, UPDATE_ROLLUP, FEATURE_PACK, SERVICE_PACK, DEFINITION, TOOLS, UPDATES.', valuesConfig: { CRITICAL: { description: 'A critical update, as its source classifies it.' }, DEFINITION: { description: 'Windows: a definition update (e.g. Defender).' }, FEATURE_PACK: { description: 'Windows: a feature pack.' }, OTHER: { description: 'Linux: any update neither critical nor security.' }, SECURITY: { description: 'Fixes a security problem.' }, SERVICE_PACK: { description: 'Windows: a service pack.' }, TOOLS: { description: 'Windows: a tool or utility.' }, UPDATES: { description: 'Windows: a non-critical, non-security update.' }, UPDATE_ROLLUP: { description: 'Windows: an update rollup.' } } });

export enum Severity {
  CRITICAL = 'CRITICAL',
  IMPORTANT = 'IMPORTANT',
  MODERATE = 'MODERATE',
  LOW = 'LOW',
}
registerEnumType(Severity, { name: 'Severity', description: "The distribution's or vendor's severity rating.", valuesConfig: { CRITICAL: { description: 'Rated critical.' }, IMPORTANT: { description: 'Rated important (high).' }, LOW: { description: 'Rated low.' }, MODERATE: { description: 'Rated moderate (medium).' } } });

export enum SortDirection {
  ASC = 'ASC',
  DESC = 'DESC',
}
registerEnumType(SortDirection, { name: 'SortDirection', description: 'Ascending or descending order.', valuesConfig: { ASC: { description: 'Ascending.' }, DESC: { description: 'Descending.' } } });
