/**
 * What the operator commands exit with, and the one error they raise. Scripts and CI pipelines rely
 * on these numbers: they are documented in docs/cli.md and never reused for another meaning.
 */
export const EXIT_CODES = {
  /** Done; for a watched run, SUCCEEDED; for `diff`, nothing would change. */
  OK: 0,
  /** An error: the API refused (its code is printed), the server could not be reached, bad input. */
  ERROR: 1,
  /** The command was called wrongly (unknown option, missing argument): commander's usage error. */
  USAGE: 2,
  /** The watched run ended PARTIALLY_FAILED. */
  RUN_PARTIALLY_FAILED: 3,
  /** The watched run ended FAILED. */
  RUN_FAILED: 4,
  /** The watched run ended CANCELED. */
  RUN_CANCELED: 5,
  /** `diff`: applying the file would change something. */
  DIFFERENCES: 6,
} as const;

/**
 * A failure the operator can act on, printed as one line (`fleetpatch: CODE (field F): message`)
 * without a stack. `code` is the API's `extensions.code` when the API answered; `field` its
 * `extensions.field`.
 */
export class OperatorError extends Error {
  readonly code: string | undefined;
  readonly field: string | undefined;

  constructor(message: string, options: { code?: string; field?: string } = {}) {
    const where = options.field ? ` (field ${options.field})` : '';
    super(options.code ? `${options.code}${where}: ${message}` : message);
    this.name = 'OperatorError';
    this.code = options.code;
    this.field = options.field;
  }
}
