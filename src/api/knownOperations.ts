/**
 * The names of the GraphQL operations this server knows: the web console's (web/src). Metrics
 * label operations by these names and count every other name as `other`, so that clients cannot
 * grow the label set (45 requests with long made-up names once made every scrape fail).
 * `test/unit/consoleQueries.test.ts` fails when the console's operations and this list differ.
 */
export const KNOWN_OPERATION_NAMES: ReadonlySet<string> = new Set([
  'Computers',
  'Create',
  'Deployment',
  'FormMachines',
  'Forecast',
  'Machine',
  'MachinesMissing',
  'Missing',
  'Preview',
  'Progress',
  'Run',
  'RunLines',
  'RunMachines',
  'RunNow',
]);
