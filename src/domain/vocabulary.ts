/**
 * The product's domain vocabulary: every enumeration the agent, the server, the database, the API
 * and the console share, written out once as an `as const` list, and the type it names.
 *
 * Why src/domain and not src/fleet: the agent (bundled alone onto managed machines), the server's
 * decisions (src/fleet), its storage (drizzle pgEnums), its API (zod, type-graphql enums) and the
 * console (built by vite) all import these lists. src/fleet holds the server's decisions and
 * src/agent one end of the wire; the words belong to neither, so they live in a folder that imports
 * nothing at all (test/unit/boundaries.test.ts holds that), which any bundle may carry.
 *
 * Order matters: the pgEnums and the GraphQL enums take their values in list order, so a value is
 * only ever appended (a reordered pgEnum is a migration; a reordered GraphQL enum a schema change).
 * test/unit/vocabulary.test.ts fails when a second literal list of these values appears elsewhere.
 */

/** Derives an enum-like object ({ CRITICAL: 'CRITICAL', ... }, in list order) for type-graphql's registerEnumType. */
export function enumObject<const T extends readonly string[]>(values: T): { readonly [K in T[number]]: K } {
  return Object.fromEntries(values.map((v) => [v, v])) as { readonly [K in T[number]]: K };
}

/** The family of operating system a machine runs. */
export const OS_TYPES = ['LINUX', 'WINDOWS'] as const;
export type OsType = (typeof OS_TYPES)[number];

/** Where a machine runs, as its agent detects it from DMI data. */
export const ENVIRONMENTS = ['AZURE', 'AWS', 'GCP', 'ON_PREMISES'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/**
 * What kind of update it is. Linux: CRITICAL (security advisory rated critical), SECURITY (any
 * other security update), OTHER. Windows: CRITICAL, SECURITY and its own update classifications.
 */
export const CLASSIFICATIONS = ['CRITICAL', 'SECURITY', 'OTHER', 'UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

/** The classifications each OS reports, in the order of CLASSIFICATIONS. */
export const CLASSIFICATIONS_BY_OS: Readonly<Record<OsType, readonly Classification[]>> = {
  LINUX: CLASSIFICATIONS.filter((c) => c === 'CRITICAL' || c === 'SECURITY' || c === 'OTHER'),
  WINDOWS: CLASSIFICATIONS.filter((c) => c !== 'OTHER'),
};

/** The classifications that make a machine NON_COMPLIANT while one is missing (and the default selection of a deployment). */
export const COMPLIANCE_CLASSIFICATIONS = CLASSIFICATIONS.slice(0, 2) as readonly Classification[];

/** The distribution's or vendor's own severity, normalised to one vocabulary (null when it gives none). */
export const SEVERITIES = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** COMPLIANT: no missing critical or security update; NON_COMPLIANT: at least one; NOT_ASSESSED: no recent assessment. */
export const COMPLIANCE_STATES = ['COMPLIANT', 'NON_COMPLIANT', 'NOT_ASSESSED'] as const;
export type Compliance = (typeof COMPLIANCE_STATES)[number];
const COMPLIANCE_RANK: Readonly<Record<Compliance, number>> = { NON_COMPLIANT: 0, NOT_ASSESSED: 1, COMPLIANT: 2 };
/** The compliance states worst first, as machines sort by compliance and as lists offer them. */
export const COMPLIANCE_WORST_FIRST: readonly Compliance[] = [...COMPLIANCE_STATES].sort((a, b) => COMPLIANCE_RANK[a] - COMPLIANCE_RANK[b]);

/** READY: the agent checks in; DISCONNECTED: silent for too long; NOT_CONFIGURED: never checked in, or management disabled. */
export const AGENT_READINESS = ['READY', 'DISCONNECTED', 'NOT_CONFIGURED'] as const;
export type AgentReadiness = (typeof AGENT_READINESS)[number];

/** When a deployment's machines reboot after installing (IF_REQUIRED is the default). */
export const REBOOT_SETTINGS = ['IF_REQUIRED', 'NEVER', 'ALWAYS', 'REBOOT_ONLY'] as const;
export type RebootSetting = (typeof REBOOT_SETTINGS)[number];

/** Where a deployment run stands. */
export const DEPLOYMENT_RUN_STATUSES = ['SCHEDULED', 'IN_PROGRESS', 'SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED', 'HALTED'] as const;
export type DeploymentRunStatus = (typeof DEPLOYMENT_RUN_STATUSES)[number];

/** Where one machine stands in a deployment run. */
export const MACHINE_RUN_STATUSES = ['PENDING', 'IN_PROGRESS', 'REBOOTING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'NOT_STARTED'] as const;
export type MachineRunStatus = (typeof MACHINE_RUN_STATUSES)[number];

/** How one update of a machine run went, as the server records it. */
export const UPDATE_RESULT_STATUSES = ['PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED', 'NOT_SELECTED'] as const;
export type UpdateResultStatus = (typeof UPDATE_RESULT_STATUSES)[number];

/** How one update of an install job stands, as the agent reports it (a subset of UPDATE_RESULT_STATUSES). */
export const JOB_UPDATE_STATUSES = ['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED'] as const satisfies readonly UpdateResultStatus[];
export type JobUpdateStatus = (typeof JOB_UPDATE_STATUSES)[number];

/** How a package backend's install of one update ended. */
export type UpdateOutcomeStatus = Extract<JobUpdateStatus, 'SUCCEEDED' | 'FAILED'>;

/** What an assessment was run for. */
export const ASSESSMENT_TRIGGERS = ['STARTUP', 'SCHEDULE', 'PACKAGE_DATABASE_CHANGED', 'COMMAND'] as const;
export type AssessmentTrigger = (typeof ASSESSMENT_TRIGGERS)[number];

/** What the server asks an agent to do. */
export const AGENT_COMMAND_KINDS = ['ASSESS', 'INSTALL', 'UPGRADE'] as const;
export type AgentCommandKind = (typeof AGENT_COMMAND_KINDS)[number];

/**
 * How an agent upgrade ended on the machine. BUSY: the agent was running an install job and
 * upgraded nothing (it upgrades between jobs only); the server may ask again later.
 */
export const UPGRADE_STATUSES = ['SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'BUSY'] as const;
export type UpgradeStatus = (typeof UPGRADE_STATUSES)[number];

/** A deployment step's phase: PRE runs before the installs, POST after them and the reboot. */
export const STEP_PHASES = ['PRE', 'POST'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

/** A script on the machine, or a control-plane call the worker makes. */
export const STEP_KINDS = ['SCRIPT', 'HTTP'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/**
 * What a failed step does: CONTINUE records it and goes on; SKIP_INSTALLS (PRE only) installs
 * nothing on the machine, its updates NOT_ATTEMPTED with the step's reason; FAIL_MACHINE installs
 * nothing more and fails the machine run; HALT_RUN fails the machine run and halts the run (no new
 * machine starts; a ringed run halts at the ring's gate, where an operator resumes or cancels it).
 */
export const STEP_FAILURE_ACTIONS = ['CONTINUE', 'SKIP_INSTALLS', 'FAIL_MACHINE', 'HALT_RUN'] as const;
export type StepFailureAction = (typeof STEP_FAILURE_ACTIONS)[number];

/** How a step went. */
export const STEP_STATUSES = ['SUCCEEDED', 'FAILED', 'NOT_RUN'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/**
 * Who says that a pending update fixes a CVE: the update's own advisory (dnf/yum updateinfo, zypper
 * patches, Windows Update), the imported Debian security tracker, or imported OSV records (Ubuntu's,
 * Debian's), both of which name source packages and fixed versions per release.
 */
export const CVE_SOURCES = ['ADVISORY', 'DEBIAN_TRACKER', 'OSV'] as const;
export type CveSource = (typeof CVE_SOURCES)[number];
