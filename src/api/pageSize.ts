/** The largest page a client may ask for: bigger pages are refused, not silently cut. */
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;
/** The most log lines one read of a run's logs or a machine run's job stream returns. */
export const MAX_LOG_LINES = 5000;
