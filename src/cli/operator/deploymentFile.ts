import fs from 'node:fs';
import { isMap, isSeq, LineCounter, parseAllDocuments, stringify, type Document } from 'yaml';
import type { ApiClient } from './client.js';
import { changesBetween, checkSpecTypes, inputOfSpec, normaliseSpec, pathOf, pathText, shown, specOfDeployment, type CanonicalDeployment, type DeploymentSpec, type FieldChange, type StoredDeployment } from './deploymentSpec.js';
import { EXIT_CODES, OperatorError } from './errors.js';
import {
  CliCheckDeploymentDocument,
  CliCreateDeploymentDocument,
  CliPauseDeploymentDocument,
  CliResumeDeploymentDocument,
  CliUpdateDeploymentDocument,
} from './graphql.generated.js';
import { allDeploymentSpecs } from './lookup.js';
import { connect } from './options.js';

/**
 * Deployments as code: `fleetpatch apply -f FILE`, `fleetpatch diff -f FILE` and
 * `fleetpatch export deployments`. A file is YAML or JSON (JSON is YAML); each of its documents is
 * `deployments: [...]`, a list of deployments, or one deployment. Deployments are matched to the
 * server's by name. Nothing is written unless every deployment of every file passes every check.
 */

/** One deployment found in a file, and where. */
interface FileDeployment {
  file: string;
  /** Its path inside its YAML document (['deployments', 2]), for messages and line numbers. */
  base: Array<string | number>;
  document: Document;
  lines: LineCounter;
  raw: unknown;
}

/** A problem in a file: `deployments.yaml:12:5: deployments[2].windowMinutes: ...`. */
export class FileProblems extends OperatorError {
  constructor(readonly problems: string[]) {
    super(`${problems.length === 1 ? 'A deployment file has a problem' : `Deployment files have ${problems.length} problems`}; nothing was changed:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

function readSource(file: string): string {
  try {
    return file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new OperatorError(`Cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

/** Where a path is in its file: the line and column of the deepest node that exists on it. */
function location(d: FileDeployment, path: ReadonlyArray<string | number>): string {
  const full = [...d.base, ...path];
  for (let n = full.length; n >= 0; n--) {
    const node = d.document.getIn(full.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) {
      const { line, col } = d.lines.linePos(node.range[0]);
      return `${d.file === '-' ? '<stdin>' : d.file}:${line}:${col}`;
    }
  }
  return d.file === '-' ? '<stdin>' : d.file;
}

function problemAt(d: FileDeployment, path: ReadonlyArray<string | number>, message: string): string {
  return `${location(d, path)}: ${pathText([...d.base, ...path]) || '(document)'}: ${message}`;
}

/** Every deployment of the files, or the problems that keep them from being read. */
export function loadDeploymentFiles(files: string[]): FileDeployment[] {
  const found: FileDeployment[] = [];
  const problems: string[] = [];
  for (const file of files) {
    const lines = new LineCounter();
    const documents = parseAllDocuments(readSource(file), { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    for (const document of Array.isArray(documents) ? documents : [documents]) {
      // The first syntax error of a document: the others usually follow from it.
      const error = document.errors[0];
      if (error) {
        const at = lines.linePos(error.pos[0]);
        problems.push(`${file === '-' ? '<stdin>' : file}:${at.line}:${at.col}: ${error.message.split('\n')[0]}`);
      }
      if (document.errors.length > 0) continue;
      const contents = document.contents;
      if (contents === null) continue;
      const add = (base: Array<string | number>, raw: unknown) => found.push({ file, base, document, lines, raw });
      if (isMap(contents) && contents.has('deployments')) {
        const list = contents.get('deployments', true);
        const extra = contents.items.map((pair) => String((pair.key as { value?: unknown })?.value ?? pair.key)).filter((k) => k !== 'deployments');
        if (extra.length > 0) problems.push(`${file}: ${extra.join(', ')}: unknown key beside "deployments"; a file holds deployments: [...] only`);
        if (!isSeq(list)) {
          problems.push(problemAt({ file, base: [], document, lines, raw: null }, ['deployments'], 'must be a list of deployments'));
          continue;
        }
        (document.toJS() as { deployments: unknown[] }).deployments.forEach((raw, i) => add(['deployments', i], raw));
      } else if (isSeq(contents)) {
        (document.toJS() as unknown[]).forEach((raw, i) => add([i], raw));
      } else {
        add([], document.toJS());
      }
    }
  }
  if (problems.length > 0) throw new FileProblems(problems);
  if (found.length === 0) throw new OperatorError(`${files.join(', ')}: no deployment found (a file holds deployments: [...], a list of deployments, or one deployment).`);
  return found;
}

type Step =
  | { kind: 'create'; d: FileDeployment; spec: DeploymentSpec }
  | { kind: 'update'; d: FileDeployment; spec: DeploymentSpec; current: StoredDeployment; changes: FieldChange[] }
  | { kind: 'unchanged'; d: FileDeployment; spec: DeploymentSpec; current: StoredDeployment };

function nameOf(step: Step): string {
  return step.spec.name.trim();
}

/**
 * What applying the files would do, checked by every rule before anything is written: the types,
 * the API's rules (the same function the API runs), names used twice, then the server's own checks
 * of every deployment that would be created or changed (machines that exist, of the right OS type,
 * targets that match something) through previewDeployment, which writes nothing.
 */
async function plan(client: ApiClient, files: string[]): Promise<Step[]> {
  const deployments = loadDeploymentFiles(files);
  const problems: string[] = [];
  const typed: Array<{ d: FileDeployment; spec: DeploymentSpec }> = [];
  for (const d of deployments) {
    const checked = checkSpecTypes(d.raw);
    if (!checked.ok) problems.push(...checked.problems.map((p) => problemAt(d, p.path, p.message)));
    else typed.push({ d, spec: checked.spec });
  }
  // Names used twice, whatever else is wrong with either deployment.
  const seen = new Map<string, FileDeployment>();
  const duplicates = new Set<FileDeployment>();
  for (const d of deployments) {
    const raw = (d.raw as { name?: unknown } | null)?.name;
    if (typeof raw !== 'string') continue;
    const first = seen.get(raw.trim());
    if (!first) seen.set(raw.trim(), d);
    else {
      duplicates.add(d);
      problems.push(problemAt(d, ['name'], `"${raw.trim()}" is also defined at ${location(first, ['name'])}; deployment names are unique`));
    }
  }
  const unique = typed.filter(({ d }) => !duplicates.has(d));

  const current = new Map((await allDeploymentSpecs(client)).map((c) => [c.name, c]));
  const now = new Date();
  const steps: Step[] = [];
  for (const { d, spec } of unique) {
    const existing = current.get(spec.name.trim());
    const wanted = normaliseSpec(spec, now, existing?.schedule?.startAt);
    if (!wanted.ok) {
      problems.push(problemAt(d, wanted.problem.path, wanted.problem.message));
      continue;
    }
    if (!existing) {
      steps.push({ kind: 'create', d, spec });
      continue;
    }
    const stored = normaliseSpec(specOfDeployment(existing), now, existing.schedule?.startAt);
    if (!stored.ok) throw new OperatorError(`The server's deployment "${existing.name}" does not pass the rules it was stored under (${pathText(stored.problem.path)}: ${stored.problem.message}); is the CLI older than the server?`);
    const changes = changesBetween(stored.value as CanonicalDeployment, wanted.value, { comparePaused: spec.paused !== undefined });
    steps.push(changes.length === 0 ? { kind: 'unchanged', d, spec, current: existing } : { kind: 'update', d, spec, current: existing, changes });
  }
  // The server's checks for those that passed ours, so that one run names every problem.
  for (const step of steps) {
    if (step.kind === 'unchanged') continue;
    if (step.kind === 'update' && step.changes.every((c) => c.field === 'paused')) continue;
    const current = step.kind === 'update' ? step.current : undefined;
    try {
      await client.request(CliCheckDeploymentDocument, { id: current?.id, input: inputOfSpec(step.spec, current?.schedule?.startAt) });
    } catch (error) {
      if (!(error instanceof OperatorError) || error.code !== 'BAD_USER_INPUT') throw error;
      problems.push(problemAt(step.d, error.field ? pathOf(error.field) : [], `${error.message.replace(/^BAD_USER_INPUT( \(field [^)]*\))?: /, '')} (the server's check)`));
    }
  }
  if (problems.length > 0) throw new FileProblems(problems);
  return steps;
}

function describe(step: Step): string[] {
  if (step.kind === 'create') return [`+ ${nameOf(step)}: would be created`];
  if (step.kind === 'unchanged') return [`= ${nameOf(step)}: unchanged`];
  return [`~ ${nameOf(step)}:`, ...step.changes.map((c) => `    ${c.field}: ${shown(c.from)} -> ${shown(c.to)}`)];
}

/** `fleetpatch diff -f FILE`: what apply would do; exits 6 when something would change. */
export async function diffCommand(options: { file: string[] }): Promise<void> {
  const steps = await plan(connect(), options.file);
  for (const step of steps) process.stdout.write(`${describe(step).join('\n')}\n`);
  const changing = steps.filter((s) => s.kind !== 'unchanged').length;
  process.stdout.write(changing === 0 ? `No differences: ${steps.length === 1 ? 'the deployment matches' : `${steps.length} deployments match`} the file.\n` : `${changing} of ${steps.length} deployments would change.\n`);
  if (changing > 0) process.exitCode = EXIT_CODES.DIFFERENCES;
}

/** `fleetpatch apply -f FILE`: creates or updates each deployment by name; a second apply changes nothing. */
export async function applyCommand(options: { file: string[] }): Promise<void> {
  const client = connect();
  const steps = await plan(client, options.file);
  let changed = 0;
  for (const step of steps) {
    const name = nameOf(step);
    const fail = (error: unknown): never => {
      if (error instanceof OperatorError && error.field) throw new OperatorError(`${problemAt(step.d, pathOf(error.field), error.message)}${changed > 0 ? ` (${changed} deployment${changed === 1 ? ' was' : 's were'} changed before this one)` : ''}`);
      throw error;
    };
    if (step.kind === 'unchanged') {
      process.stdout.write(`= ${name}: unchanged\n`);
      continue;
    }
    if (step.kind === 'create') {
      const { createDeployment } = await client.request(CliCreateDeploymentDocument, { input: inputOfSpec(step.spec) }).catch(fail);
      if (step.spec.paused) await client.request(CliPauseDeploymentDocument, { id: createDeployment.id });
      process.stdout.write(`+ ${name}: created (${createDeployment.id})${step.spec.paused ? ', paused' : ''}\n`);
      changed++;
      continue;
    }
    const id = step.current.id;
    if (step.changes.some((c) => c.field !== 'paused')) await client.request(CliUpdateDeploymentDocument, { id, input: inputOfSpec(step.spec, step.current.schedule?.startAt) }).catch(fail);
    if (step.spec.paused !== undefined && step.spec.paused !== step.current.paused) {
      if (step.spec.paused) await client.request(CliPauseDeploymentDocument, { id });
      else await client.request(CliResumeDeploymentDocument, { id });
    }
    process.stdout.write(`~ ${name}: updated (${step.changes.map((c) => c.field).join(', ')})\n`);
    changed++;
  }
  process.stdout.write(changed === 0 ? `No changes: ${steps.length === 1 ? 'the deployment already matches' : `${steps.length} deployments already match`} ${options.file.join(', ')}.\n` : `${changed} deployment${changed === 1 ? '' : 's'} changed, ${steps.length - changed} unchanged.\n`);
}

/** `fleetpatch export deployments`: every deployment as a file `apply` takes back unchanged. */
export async function exportDeployments(options: { output?: string }): Promise<void> {
  const format = (options.output ?? 'yaml').toLowerCase();
  if (format !== 'yaml' && format !== 'json') throw new OperatorError(`--output must be yaml or json; got "${options.output}".`);
  const client = connect();
  const deployments = (await allDeploymentSpecs(client)).map(specOfDeployment).sort((a, b) => a.name.localeCompare(b.name));
  const document = { deployments };
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
    return;
  }
  process.stdout.write(`# fleetpatch deployments exported from ${client.graphqlUrl} at ${new Date().toISOString()}\n# Apply with: fleetpatch apply -f FILE (deployments are matched by name)\n`);
  process.stdout.write(stringify(document, { lineWidth: 0 }));
}

