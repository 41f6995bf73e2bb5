import pkg from '../package.json' with { type: 'json' };

/** The package version, reported by the API and by agents (inlined into the agent bundle). */
export const version: string = pkg.version;
