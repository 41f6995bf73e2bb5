import { registerEnumType } from 'type-graphql';
import { AGENT_READINESS, CLASSIFICATIONS, COMPLIANCE_STATES, ENVIRONMENTS, OS_TYPES, SEVERITIES, enumObject } from '../../domain/vocabulary.js';

export const OsType = enumObject(OS_TYPES);
export type OsType = (typeof OsType)[keyof typeof OsType];
registerEnumType(OsType, { name: 'OsType', description: 'The family of operating system a machine runs.', valuesConfig: { LINUX: { description: 'Linux (apt, dnf or zypper).' }, WINDOWS: { description: 'Windows (Windows Update).' } } });

export const Environment = enumObject(ENVIRONMENTS);
export type Environment = (typeof Environment)[keyof typeof Environment];
registerEnumType(Environment, { name: 'Environment', description: 'Where the machine runs, detected by its agent from DMI data.', valuesConfig: { AWS: { description: 'Amazon Web Services.' }, AZURE: { description: 'Microsoft Azure.' }, GCP: { description: 'Google Cloud.' }, ON_PREMISES: { description: 'No cloud detected.' } } });

export const Compliance = enumObject(COMPLIANCE_STATES);
export type Compliance = (typeof Compliance)[keyof typeof Compliance];
registerEnumType(Compliance, {
  name: 'Compliance',
  description: 'COMPLIANT: no missing critical or security update. NON_COMPLIANT: at least one. NOT_ASSESSED: no assessment in the expected time (3 h Linux, 12 h Windows).', valuesConfig: { COMPLIANT: { description: 'No missing critical or security update.' }, NON_COMPLIANT: { description: 'At least one missing critical or security update.' }, NOT_ASSESSED: { description: 'No assessment in the expected time (3 h Linux, 12 h Windows).' } } });

export const AgentReadiness = enumObject(AGENT_READINESS);
export type AgentReadiness = (typeof AgentReadiness)[keyof typeof AgentReadiness];
registerEnumType(AgentReadiness, {
  name: 'AgentReadiness',
  description: 'Update agent readiness. READY: checks in. DISCONNECTED: silent for too long. NOT_CONFIGURED: never checked in, or update management disabled.', valuesConfig: { DISCONNECTED: { description: 'The agent has been silent for too long.' }, NOT_CONFIGURED: { description: 'The agent never checked in, or update management is disabled.' }, READY: { description: 'The agent checks in.' } } });

export const Classification = enumObject(CLASSIFICATIONS);
export type Classification = (typeof Classification)[keyof typeof Classification];
registerEnumType(Classification, {
  name: 'Classification',
  description: 'Linux: CRITICAL, SECURITY, OTHER. Windows: CRITICAL, SECURITY, UPDATE_ROLLUP, FEATURE_PACK, SERVICE_PACK, DEFINITION, TOOLS, UPDATES.', valuesConfig: { CRITICAL: { description: 'A critical update, as its source classifies it.' }, DEFINITION: { description: 'Windows: a definition update (e.g. Defender).' }, FEATURE_PACK: { description: 'Windows: a feature pack.' }, OTHER: { description: 'Linux: any update neither critical nor security.' }, SECURITY: { description: 'Fixes a security problem.' }, SERVICE_PACK: { description: 'Windows: a service pack.' }, TOOLS: { description: 'Windows: a tool or utility.' }, UPDATES: { description: 'Windows: a non-critical, non-security update.' }, UPDATE_ROLLUP: { description: 'Windows: an update rollup.' } } });

export const Severity = enumObject(SEVERITIES);
export type Severity = (typeof Severity)[keyof typeof Severity];
registerEnumType(Severity, { name: 'Severity', description: "The distribution's or vendor's severity rating.", valuesConfig: { CRITICAL: { description: 'Rated critical.' }, IMPORTANT: { description: 'Rated important (high).' }, LOW: { description: 'Rated low.' }, MODERATE: { description: 'Rated moderate (medium).' } } });

export enum SortDirection {
  ASC = 'ASC',
  DESC = 'DESC',
}
registerEnumType(SortDirection, { name: 'SortDirection', description: 'Ascending or descending order.', valuesConfig: { ASC: { description: 'Ascending.' }, DESC: { description: 'Descending.' } } });
