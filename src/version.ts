import { createRequire } from 'node:module';

/** The package version, reported by the API and (later) by agents. */
export const version: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
