/** The largest page a client may ask for: bigger pages are refused, not silently cut. */
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;
/** The most log lines one read of a run's logs or a machine run's job stream returns. */
export const MAX_LOG_LINES = 5000;
/** Lines of a run's logs or job stream per page when `first` is not given. */
export const DEFAULT_LOG_LINES = 1000;

/**
 * Connections whose pages are sized otherwise than DEFAULT_PAGE_SIZE / MAX_PAGE_SIZE (lines are
 * small): the resolvers take their `first` from here, and the cost model (limits.ts) sizes them by it.
 */
export const PAGE_SIZES: Record<string, { default: number; max: number }> = {
  'DeploymentRun.logs': { default: DEFAULT_LOG_LINES, max: MAX_LOG_LINES },
  'MachineRun.jobStream': { default: DEFAULT_LOG_LINES, max: MAX_LOG_LINES },
};
