/**
 * The JSON documents `windows.ps1` prints, as a schema the agent checks every document against
 * before it believes a word of it. A tiny schema language rather than zod: zod would multiply the
 * size of the single-file agent bundle (116 KB) by six for a dozen objects. Objects are strict both
 * ways (a missing key and an unknown key are errors), so a script that drifts from the parser fails
 * loudly; `test/unit/windowsScript.test.ts` reads the script's hashtables and checks them against
 * these shapes as well.
 */

export class DocumentError extends Error {
  override name = 'DocumentError';
}

export interface Schema<T> {
  readonly kind: 'string' | 'number' | 'integer' | 'boolean' | 'literal' | 'enum' | 'nullable' | 'array' | 'object';
  parse(value: unknown, at: string): T;
}

export interface ObjectSchema<T> extends Schema<T> {
  readonly kind: 'object';
  readonly shape: Readonly<Record<string, Schema<unknown>>>;
}

export interface WrapperSchema<T> extends Schema<T> {
  readonly kind: 'nullable' | 'array';
  readonly inner: Schema<unknown>;
}

type Infer<S> = S extends Schema<infer T> ? T : never;

const describe = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value);
const fail = (at: string, expected: string, value: unknown): never => {
  throw new DocumentError(`${at}: expected ${expected}, got ${describe(value)}`);
};

export const string: Schema<string> = { kind: 'string', parse: (v, at) => (typeof v === 'string' ? v : fail(at, 'a string', v)) };
export const number: Schema<number> = { kind: 'number', parse: (v, at) => (typeof v === 'number' && Number.isFinite(v) ? v : fail(at, 'a number', v)) };
export const integer: Schema<number> = { kind: 'integer', parse: (v, at) => (Number.isInteger(v) ? (v as number) : fail(at, 'an integer', v)) };
export const boolean: Schema<boolean> = { kind: 'boolean', parse: (v, at) => (typeof v === 'boolean' ? v : fail(at, 'true or false', v)) };

export function literal<const T extends string | number>(expected: T): Schema<T> {
  return { kind: 'literal', parse: (v, at) => (v === expected ? expected : fail(at, JSON.stringify(expected), v)) };
}

export function oneOf<const T extends string>(values: readonly T[]): Schema<T> {
  return { kind: 'enum', parse: (v, at) => (values.includes(v as T) ? (v as T) : fail(at, `one of ${values.join(', ')}`, v)) };
}

export function nullable<T>(inner: Schema<T>): WrapperSchema<T | null> {
  return { kind: 'nullable', inner, parse: (v, at) => (v === null || v === undefined ? null : inner.parse(v, at)) };
}

export function array<T>(inner: Schema<T>): WrapperSchema<T[]> {
  return {
    kind: 'array',
    inner,
    // PowerShell 5.1's ConvertTo-Json writes null for an empty collection in some positions: read it as [].
    parse: (v, at) => (v === null ? [] : Array.isArray(v) ? v.map((item, i) => inner.parse(item, `${at}[${i}]`)) : fail(at, 'an array', v)),
  };
}

export function object<S extends Record<string, Schema<unknown>>>(shape: S): ObjectSchema<{ [K in keyof S]: Infer<S[K]> }> {
  return {
    kind: 'object',
    shape,
    parse(v, at) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(at, 'an object', v);
      const record = v as Record<string, unknown>;
      const unknownKey = Object.keys(record).find((key) => !(key in shape));
      if (unknownKey !== undefined) throw new DocumentError(`${at}: unexpected property "${unknownKey}"`);
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape)) {
        if (!(key in record) && schema.kind !== 'nullable') throw new DocumentError(`${at}: missing property "${key}"`);
        out[key] = schema.parse(record[key], `${at}.${key}`);
      }
      return out as { [K in keyof S]: Infer<S[K]> };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The documents

const hresultError = object({ hresult: string, message: string });

/** One update as `ConvertTo-UpdateRecord` builds it from an IUpdate. */
export const updateRecord = object({
  title: string,
  /** Numbers only, as WUA keeps them ("5031364"). */
  kbArticleIds: array(string),
  updateId: string,
  revision: integer,
  /** The update's category of type UpdateClassification (id is the fixed GUID, name is localised). */
  classification: nullable(object({ id: string, name: string })),
  /** Critical, Important, Moderate, Low, or null. */
  msrcSeverity: nullable(string),
  cveIds: array(string),
  /** IUpdate.LastDeploymentChangeTime, ISO 8601 UTC; absent from documents of agents before it was read. */
  lastDeploymentChangeTime: nullable(string),
  securityBulletinIds: array(string),
  supersededUpdateIds: array(string),
  maxDownloadSize: number,
  /** 0 never reboots, 1 always requires a reboot, 2 can request one. */
  rebootBehavior: integer,
  isDownloaded: boolean,
  isHidden: boolean,
});

export const updateSource = object({ kind: oneOf(['WSUS', 'MICROSOFT_UPDATE', 'WINDOWS_UPDATE']), url: nullable(string) });

const rebootPending = object({ windowsUpdate: boolean, componentBasedServicing: boolean, pendingFileRenameOperations: boolean });

export const assessDocument = object({
  schemaVersion: literal(1),
  mode: literal('Assess'),
  updates: array(updateRecord),
  /** The search itself failed (source unreachable): no list at all. */
  searchError: nullable(hresultError),
  rebootPending,
  updateSource,
  lastInstallSuccess: nullable(string),
});

/** The cheap look: no search, only the last successful install time and the pending reboot. */
export const statusDocument = object({ schemaVersion: literal(1), mode: literal('Status'), lastInstallSuccess: nullable(string), rebootPending });

export const installResult = object({
  updateId: string,
  title: nullable(string),
  /** false: not started (not offered any more, or the deadline passed). */
  started: boolean,
  /** WUA OperationResultCode: 0 not started, 1 in progress, 2 succeeded, 3 succeeded with errors, 4 failed, 5 aborted. */
  resultCode: integer,
  hresult: nullable(string),
  message: nullable(string),
  rebootRequired: boolean,
});

export const installDocument = object({ schemaVersion: literal(1), mode: literal('Install'), results: array(installResult), rebootRequired: boolean });

/** What the script prints when it fails as a whole (WUA service disabled, COM not registered). */
export const fatalDocument = object({ schemaVersion: literal(1), mode: string, fatal: hresultError });

export type UpdateRecord = Infer<typeof updateRecord>;
export type UpdateSource = Infer<typeof updateSource>;
export type AssessDocument = Infer<typeof assessDocument>;
export type StatusDocument = Infer<typeof statusDocument>;
export type InstallResult = Infer<typeof installResult>;
export type InstallDocument = Infer<typeof installDocument>;
export type FatalDocument = Infer<typeof fatalDocument>;

/** Every object shape of the documents, for the test that holds the script to them. */
export const DOCUMENT_SCHEMAS = { assessDocument, statusDocument, installDocument, fatalDocument } as const;
