/** The largest page a client may ask for: bigger pages are refused, not silently cut. */
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;
