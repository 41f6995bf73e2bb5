/**
 * The names of the GraphQL operations this server knows: the web console's (web/src/*.graphql) and
 * the operator CLI's (src/cli/operator/operations.graphql). Metrics label operations by these names
 * and count every other name as `other`, so that clients cannot grow the label set (45 requests with
 * long made-up names once made every scrape fail). `test/unit/consoleQueries.test.ts` fails when the
 * clients' operations and this list differ.
 */
export const KNOWN_OPERATION_NAMES: ReadonlySet<string> = new Set([
  // The web console
  'AssessMachines',
  'CancelRun',
  'Computers',
  'Create',
  'Deployment',
  'Deployments',
  'FormMachines',
  'Forecast',
  'Machine',
  'MachineChanged',
  'MachinesMissing',
  'Missing',
  'Overview',
  'Preview',
  'Progress',
  'Run',
  'RunNow',
  'SetDeploymentPaused',
  // The operator CLI
  'CliApiTokens',
  'CliAssessMachines',
  'CliCancelRun',
  'CliCheckDeployment',
  'CliCreateApiToken',
  'CliCreateDeployment',
  'CliCreateEnrollmentKey',
  'CliDeleteDeployment',
  'CliDeployment',
  'CliDeploymentSpecs',
  'CliDeployments',
  'CliEnrollmentKeys',
  'CliLastRun',
  'CliMachine',
  'CliMachines',
  'CliMachinesNamed',
  'CliMissingUpdates',
  'CliPauseDeployment',
  'CliResumeDeployment',
  'CliRevokeApiToken',
  'CliRevokeEnrollmentKey',
  'CliRun',
  'CliRunDeploymentNow',
  'CliRunLogs',
  'CliRunProgress',
  'CliRunProgressSnapshot',
  'CliRuns',
  'CliSystemStatus',
  'CliUpdateDeployment',
]);
