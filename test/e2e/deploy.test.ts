import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { DEPLOY_TOOLS, ensureDeployTool, unavailableReason, type DeployTool, type DeployToolName } from '../../scripts/deploy-tools.mjs';
import { freePort } from '../../src/net.js';
import { freshDatabase } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * deploy/: what an operator runs fleetpatch with on hosts and clusters of their own. No container
 * engine and no Kubernetes run here, so what is checked is what can be without them: the
 * Dockerfile by hadolint and by laying out the image's files as it copies them and running them;
 * the compose file against the Compose specification's schema; the Helm chart by `helm lint`, and
 * `helm template` rendered and validated against Kubernetes' own schemas (kubectl-validate), plus
 * what the chart must say (probes, scrape annotations, secrets, the migrations Job). The tools come
 * from the package registries (scripts/deploy-tools.mjs; .ci/run installs them before the suite).
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY = path.join(ROOT, 'deploy');
const CHART = path.join(DEPLOY, 'helm/fleetpatch');
const COMPOSE_FILE = path.join(DEPLOY, 'compose/docker-compose.yml');
/** The newest Kubernetes whose schemas kubectl-validate carries; the chart asks for 1.25 or newer. */
const KUBERNETES_VERSION = '1.30';

const tools: Partial<Record<DeployToolName, DeployTool>> = {};
/**
 * Tools that can be neither found nor built here (no Go, no pip): their checks are skipped, with
 * the reason printed. Never in CI, where .ci/run installs them: a check skipped there would pass
 * unnoticed, so a missing tool fails the file instead.
 */
const missing: Partial<Record<DeployToolName, string>> = {};
for (const name of Object.keys(DEPLOY_TOOLS) as DeployToolName[]) {
  const reason = unavailableReason(name);
  if (reason && !process.env.CI) {
    missing[name] = reason;
    console.warn(`deploy test: the checks that need ${name} are skipped: ${reason}`);
  }
}

beforeAll(async () => {
  // Found in the cache, or built once (minutes for the Go ones: .ci/run does it before the suite).
  for (const name of Object.keys(DEPLOY_TOOLS) as DeployToolName[]) {
    if (!missing[name]) tools[name] = await ensureDeployTool(name, (line) => console.error(line));
  }
}, 45 * 60_000);

function runTool(name: DeployToolName, args: string[], options: { input?: string; cwd?: string } = {}): { status: number | null; output: string } {
  const tool = tools[name]!;
  const result = spawnSync(tool.command, args, { encoding: 'utf8', env: { ...process.env, ...tool.env }, input: options.input, cwd: options.cwd ?? ROOT, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile, read the way the builder reads it (only what deploy/Dockerfile uses).

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  name: string | undefined;
  workdir: string;
  env: Record<string, string>;
  copies: Array<{ from: string | undefined; sources: string[]; destination: string }>;
  runs: string[];
  entrypoint: string[] | undefined;
  user: string | undefined;
}

function readDockerfile(file: string): Stage[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of lines) {
    if (/^\s*#/.test(raw) && pending === '') continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    if (!whole) continue;
    const [keyword, ...rest] = whole.split(/\s+/);
    instructions.push({ keyword: keyword!.toUpperCase(), args: rest.join(' ') });
  }
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { keyword, args: text } of instructions) {
    const stage = stages.at(-1);
    const words = text.split(/\s+/);
    if (keyword === 'ARG' && !stage) {
      const [name, value] = text.split('=');
      args[name!] = value ?? '';
    } else if (keyword === 'FROM') {
      stages.push({ name: /\bAS\s+(\S+)$/i.exec(text)?.[1], workdir: '/', env: {}, copies: [], runs: [], entrypoint: undefined, user: undefined });
    } else if (!stage) {
      throw new Error(`${keyword} before FROM`);
    } else if (keyword === 'WORKDIR') {
      stage.workdir = path.posix.resolve(stage.workdir, text);
    } else if (keyword === 'ENV') {
      for (const pair of words) {
        const [name, value] = pair.split('=');
        stage.env[name!] = value!;
      }
    } else if (keyword === 'COPY') {
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      stage.copies.push({ from, sources: paths.slice(0, -1), destination: path.posix.resolve(stage.workdir, paths.at(-1)!) });
    } else if (keyword === 'RUN') {
      stage.runs.push(text);
    } else if (keyword === 'ENTRYPOINT') {
      stage.entrypoint = JSON.parse(text) as string[];
    } else if (keyword === 'USER') {
      stage.user = text;
    }
  }
  return stages;
}

/**
 * Whether .dockerignore lets a path of the build context through: its last matching pattern
 * decides, and a pattern matches a path or any folder above it. Only the forms the file uses are
 * understood (`*` and `!name`); anything else fails the test rather than being misread.
 */
function inBuildContext(relative: string): boolean {
  const patterns = fs
    .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let included = true;
  const parts = relative.split('/');
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (body !== '*' && !/^[\w.-]+(\/[\w.-]+)*$/.test(body)) throw new Error(`.dockerignore pattern ${pattern} is not one this test understands`);
    const matches = body === '*' || parts.some((_, i) => parts.slice(0, i + 1).join('/') === body);
    if (matches) included = negated;
  }
  return included;
}

describe('the container build (deploy/Dockerfile)', () => {
  const stages = readDockerfile(path.join(DEPLOY, 'Dockerfile'));
  const final = stages.at(-1)!;
  const build = stages.find((s) => s.name === 'build')!;

  it.skipIf(missing.hadolint)('hadolint finds nothing to say about it', () => {
    const { status, output } = runTool('hadolint', ['deploy/Dockerfile']);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('is multi-stage and runs as an unprivileged user given by number', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(final.user).toMatch(/^[1-9]\d*(:\d+)?$/);
  });

  it('copies from the build context only what exists there and .dockerignore lets through', () => {
    const fromContext = stages.flatMap((s) => s.copies.filter((c) => !c.from).flatMap((c) => c.sources));
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect(fs.existsSync(path.join(ROOT, source)), `${source} exists`).toBe(true);
      expect(inBuildContext(path.normalize(source)), `${source} is in the build context`).toBe(true);
    }
    // And the context holds nothing of a working copy's own.
    for (const left of ['node_modules', 'dist', '.fleetpatch', 'test', '.git']) expect(inBuildContext(left), left).toBe(false);
  });

  it('copies into the image only what `npm run build` has made or the build stage copied in', () => {
    const built = ['dist', 'node_modules'];
    expect(build.runs.join('\n')).toMatch(/npm ci/);
    expect(build.runs.join('\n')).toMatch(/npm run build/);
    const copiedIn = build.copies.filter((c) => !c.from).map((c) => path.posix.relative(build.workdir, c.destination));
    for (const copy of final.copies) {
      expect(copy.from).toBe('build');
      for (const source of copy.sources) {
        const relative = path.posix.relative(build.workdir, source);
        expect(relative.startsWith('..'), `${source} is inside the build stage's ${build.workdir}`).toBe(false);
        expect(fs.existsSync(path.join(ROOT, relative)), `${relative} exists after npm run build`).toBe(true);
        const origin = built.includes(relative) || copiedIn.some((dir) => dir === '' ? fs.existsSync(path.join(ROOT, relative)) : relative === dir || relative.startsWith(`${dir}/`));
        expect(origin, `${relative} is made by the build stage or copied into it`).toBe(true);
      }
    }
    // What the image starts is among what it copied.
    const entry = final.entrypoint!.find((a) => a.endsWith('.js'))!;
    expect(final.copies.some((c) => entry.startsWith(`${c.destination}/`)), `${entry} is copied into the image`).toBe(true);
    for (const made of ['dist/cli/main.js', 'dist/web/index.html', 'dist/agent/fleetpatch-agent.mjs', 'migrations/meta/_journal.json']) {
      expect(fs.existsSync(path.join(ROOT, made)), made).toBe(true);
    }
  });

  describe("the image's files, laid out as it copies them, with its runtime dependencies only", () => {
    let app: string;
    let database: { url: string; drop: () => Promise<void> };
    const running: Spawned[] = [];

    beforeAll(async () => {
      app = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-image-')), final.workdir);
      const removed = [...build.runs.join(' ').matchAll(/rm -rf ((?:node_modules\/\S+\s*)+)/g)].flatMap((m) => m[1]!.trim().split(/\s+/));
      for (const copy of final.copies) {
        for (const source of copy.sources) {
          const relative = path.posix.relative(build.workdir, source);
          const target = path.join(app, path.posix.relative(final.workdir, copy.destination));
          if (relative === 'node_modules') linkRuntimeDependencies(target, removed);
          else fs.cpSync(path.join(ROOT, relative), target, { recursive: true });
        }
      }
      database = await freshDatabase({ migrate: false });
    });

    afterAll(async () => {
      for (const process of running) await stop(process);
      await database?.drop();
      if (app) fs.rmSync(path.dirname(app), { recursive: true, force: true });
    });

    /** A process of the image: its ENV, its WORKDIR, nothing inherited from this test's environment. */
    function runImage(args: string[], env: Record<string, string>): Spawned {
      const entry = final.entrypoint!.find((a) => a.endsWith('.js'))!;
      const bin = path.join(app, path.posix.relative(final.workdir, entry));
      const spawned = spawnFleetpatch(args, { ...final.env, ...env }, { bin, inheritEnv: false, cwd: app });
      running.push(spawned);
      return spawned;
    }

    it('migrate applies every migration to an empty database', async () => {
      const journal = JSON.parse(fs.readFileSync(path.join(ROOT, 'migrations/meta/_journal.json'), 'utf8')) as { entries: unknown[] };
      const migrate = runImage(['migrate'], { DATABASE_URL: database.url });
      expect(await migrate.exited, migrate.output()).toEqual({ code: 0, signal: null });
      expect(migrate.output()).toContain(`applied ${journal.entries.length} migration(s)`);
    });

    it('server answers /healthz, /readyz and the console, and stops on SIGTERM', async () => {
      const port = await freePort();
      const server = runImage(['server'], { DATABASE_URL: database.url, TEMPORAL_ADDRESS: inject('temporalAddress'), FLEETPATCH_TASK_QUEUE: `image-${randomUUID()}`, PORT: String(port) });
      await server.waitFor(/API listening/, 120_000);
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${base}/readyz`)).json()).toMatchObject({ status: 'ready' });
      const page = await fetch(`${base}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<div id="root">/);
      // JSON logs (LOG_FORMAT from the image), and no Apollo Sandbox (NODE_ENV=production).
      expect(server.output()).toMatch(/^\{"level":/m);
      expect((await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } })).status).not.toBe(200);
      expect(await stop(server)).toEqual({ code: 0, signal: null });
    });

    it('worker starts polling its task queue and stops on SIGTERM', async () => {
      const worker = runImage(['worker'], { DATABASE_URL: database.url, TEMPORAL_ADDRESS: inject('temporalAddress'), FLEETPATCH_TASK_QUEUE: `image-${randomUUID()}` });
      await worker.waitFor(/worker polling/, 180_000);
      expect(await stop(worker)).toEqual({ code: 0, signal: null });
    }, 240_000);

    it('token create prints an admin token (the first one an operator makes)', async () => {
      const token = runImage(['token', 'create', '--role', 'ADMIN', '--name', 'first admin'], { DATABASE_URL: database.url });
      expect(await token.exited, token.output()).toEqual({ code: 0, signal: null });
      expect(token.output()).toMatch(/fp_[A-Za-z0-9_-]{43}/);
    });
  });
});

/**
 * node_modules as `npm prune --omit=dev` leaves it: a link to each package the production tree
 * holds at the top level, less the ones the Dockerfile removes.
 */
function linkRuntimeDependencies(target: string, removed: string[]): void {
  const listing = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const top = path.join(ROOT, 'node_modules');
  const names = new Set<string>();
  for (const dir of listing.split('\n')) {
    const relative = path.relative(top, dir);
    if (!dir || relative.startsWith('..')) continue;
    const parts = relative.split(path.sep);
    const name = parts[0]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    if (parts.length === (name.includes('/') ? 2 : 1)) names.add(name);
  }
  expect(names.size).toBeGreaterThan(50);
  for (const name of names) {
    if (removed.some((r) => `node_modules/${name}` === r || `node_modules/${name}`.startsWith(`${r}/`))) continue;
    fs.mkdirSync(path.dirname(path.join(target, name)), { recursive: true });
    fs.symlinkSync(path.join(top, name), path.join(target, name), 'dir');
  }
  // The binaries of installed packages, as npm leaves them (some packages run theirs).
  if (fs.existsSync(path.join(top, '.bin'))) fs.symlinkSync(path.join(top, '.bin'), path.join(target, '.bin'), 'dir');
}

// ---------------------------------------------------------------------------------------------

describe('the single-host compose file (deploy/compose/docker-compose.yml)', () => {
  const compose = parseYaml(fs.readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; build?: { context: string; dockerfile: string }; command?: string[]; depends_on?: Record<string, unknown> | string[]; environment?: Record<string, string> }>;
  };

  it.skipIf(missing['check-jsonschema'])('is valid against the Compose specification', () => {
    const { status, output } = runTool('check-jsonschema', ['--builtin-schema', 'vendor.compose-spec', COMPOSE_FILE]);
    expect(output).toMatch(/ok -- validation done/);
    expect(status).toBe(0);
  });

  it.skipIf(missing['check-jsonschema'])('the schema check refuses a service with a misspelt key (it is not a no-op)', () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-compose-')), 'docker-compose.yml');
    fs.writeFileSync(broken, fs.readFileSync(COMPOSE_FILE, 'utf8').replace('    depends_on:\n      postgres:', '    depend_on:\n      postgres:'));
    try {
      const { status, output } = runTool('check-jsonschema', ['--builtin-schema', 'vendor.compose-spec', broken]);
      expect(status).not.toBe(0);
      expect(output).toMatch(/depend_on/);
    } finally {
      fs.rmSync(path.dirname(broken), { recursive: true, force: true });
    }
  });

  it('runs PostgreSQL, Temporal auto-setup, the migrations, the API and the worker, in order', () => {
    const { services } = compose;
    expect(services.postgres!.image).toMatch(/^postgres:/);
    expect(services.temporal!.image).toMatch(/^temporalio\/auto-setup:\d+\.\d+\.\d+$/);
    expect(services.migrate!.command).toEqual(['migrate']);
    expect(services.server!.command).toEqual(['server']);
    expect(services.worker!.command).toEqual(['worker']);
    for (const [name, service] of Object.entries(services)) {
      const needs = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const other of needs) expect(Object.keys(services), `${name} depends on ${other}`).toContain(other);
    }
    expect(services.server!.depends_on).toMatchObject({ migrate: { condition: 'service_completed_successfully' } });
    for (const name of ['migrate', 'server', 'worker']) {
      const { build } = services[name]!;
      expect(path.resolve(path.dirname(COMPOSE_FILE), build!.context, build!.dockerfile)).toBe(path.join(DEPLOY, 'Dockerfile'));
      // Every fleetpatch process reaches the database the postgres service creates.
      const url = new URL(services[name]!.environment!.DATABASE_URL!.replace(/\$\{POSTGRES_PASSWORD[^}]*\}/, 'secret'));
      expect([url.hostname, url.username, url.pathname]).toEqual(['postgres', services.postgres!.environment!.POSTGRES_USER, `/${services.postgres!.environment!.POSTGRES_DB}`]);
    }
    expect(services.worker!.environment!.FLEETPATCH_WORKER_METRICS_ADDRESS).toMatch(/^0\.0\.0\.0:\d+$/);
  });

  it('every variable it requires is in .env.example', () => {
    const text = fs.readFileSync(COMPOSE_FILE, 'utf8');
    const required = new Set([...text.matchAll(/\$\{(\w+):\?/g)].map((m) => m[1]!));
    const example = fs.readFileSync(path.join(DEPLOY, 'compose/.env.example'), 'utf8');
    expect(required.size).toBeGreaterThan(0);
    for (const name of required) expect(example).toMatch(new RegExp(`^${name}=`, 'm'));
  });
});

// ---------------------------------------------------------------------------------------------

type Manifest = { kind: string; apiVersion: string; metadata: { name: string; annotations?: Record<string, string> }; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The chart's values files for checks (chart-testing's convention: ci/*.yaml), relative to the chart. */
const valuesFiles = fs.readdirSync(path.join(CHART, 'ci')).map((f) => `ci/${f}`);

describe('the Helm chart (deploy/helm/fleetpatch)', () => {
  function render(values: string[], extra: string[] = []): { status: number | null; output: string } {
    // --kube-version: helm built from source does not know its release's default.
    return runTool('helm', ['template', 'fp', CHART, '--kube-version', `${KUBERNETES_VERSION}.0`, ...values.flatMap((v) => ['-f', path.join(CHART, v)]), ...extra]);
  }

  function manifests(values: string): Manifest[] {
    const { status, output } = render([values]);
    expect(status, output).toBe(0);
    return parseAllDocuments(output)
      .map((d) => d.toJS() as Manifest | null)
      .filter((m): m is Manifest => m !== null);
  }

  it.skipIf(missing.helm).each(valuesFiles)('helm lint --strict passes with %s', (values) => {
    const { status, output } = runTool('helm', ['lint', '--strict', CHART, '-f', path.join(CHART, values)]);
    expect(output).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(status).toBe(0);
  });

  it.skipIf(missing.helm || missing['kubectl-validate']).each(valuesFiles)(`helm template with %s is valid for Kubernetes ${KUBERNETES_VERSION} (kubectl-validate)`, (values) => {
    const { status, output } = render([values]);
    expect(status, output).toBe(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-chart-'));
    try {
      fs.writeFileSync(path.join(dir, 'rendered.yaml'), output);
      const validated = runTool('kubectl-validate', [dir, '--version', KUBERNETES_VERSION]);
      expect(validated.output).toMatch(/rendered\.yaml\S*\.\.\.\S*OK/);
      expect(validated.output).not.toMatch(/ERROR|invalid/);
      expect(validated.status, validated.output).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(missing.helm || missing['kubectl-validate'])('kubectl-validate refuses a manifest the API server would refuse (it is not a no-op)', () => {
    const { output } = render([valuesFiles[0]!]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-chart-'));
    try {
      fs.writeFileSync(path.join(dir, 'rendered.yaml'), output.replace('periodSeconds: 10\n            timeoutSeconds: 3', 'periodSeconds: ten\n            timeoutSeconds: 3'));
      const validated = runTool('kubectl-validate', [dir, '--version', KUBERNETES_VERSION]);
      expect(validated.status).not.toBe(0);
      expect(validated.output).toMatch(/periodSeconds/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(missing.helm)('refuses to render without a Temporal address, and says which value', () => {
    const { status, output } = render([], ['--set', 'temporal.address=']);
    expect(status).not.toBe(0);
    expect(output).toMatch(/temporal\.address: the Temporal frontend, host:port/);
  });

  it.skipIf(missing.helm).each(valuesFiles)('with %s: probes, scrape annotations, secrets and the migrations Job are where they must be', (values) => {
    const all = manifests(values);
    const one = (kind: string, suffix: string) => all.find((m) => m.kind === kind && m.metadata.name.endsWith(suffix))!;
    const server = one('Deployment', '-server');
    const worker = one('Deployment', '-worker');
    const job = one('Job', '-migrate');
    const service = one('Service', 'fp-fleetpatch');
    const container = (d: Manifest) => d.spec.template.spec.containers[0];
    const env = (d: Manifest) => Object.fromEntries((container(d).env as Array<{ name: string; value?: string; valueFrom?: unknown }>).map((e) => [e.name, e.value ?? e.valueFrom]));
    const portNumber = (d: Manifest, name: string) => (container(d).ports as Array<{ name: string; containerPort: number }>).find((p) => p.name === name)?.containerPort;

    // The commands the image runs.
    expect([container(server).args, container(worker).args, container(job).args]).toEqual([['server'], ['worker'], ['migrate']]);

    // Probes: alive on /healthz, ready on /readyz, on the API's own port.
    const serverContainer = container(server);
    expect(serverContainer.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(serverContainer.startupProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(serverContainer.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(String(portNumber(server, 'http'))).toBe(env(server).PORT);
    // /readyz waits up to 2 s for each of PostgreSQL and Temporal.
    expect(serverContainer.readinessProbe.timeoutSeconds).toBeGreaterThan(2);

    // The Service reaches the API's pods (and only them) on the port that carries HTTP and WebSockets.
    expect(service.spec.ports[0].targetPort).toBe('http');
    expect(server.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(worker.spec.template.metadata.labels).not.toMatchObject(service.spec.selector);
    expect(service.spec.sessionAffinity ?? 'None').toBe('None');

    // Prometheus: the API's /metrics, the worker's FLEETPATCH_WORKER_METRICS_ADDRESS.
    const scrape = (d: Manifest) => d.spec.template.metadata.annotations as Record<string, string>;
    expect(scrape(server)).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/path': '/metrics', 'prometheus.io/port': String(portNumber(server, 'http')) });
    expect(scrape(worker)).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/path': '/metrics', 'prometheus.io/port': String(portNumber(worker, 'metrics')) });
    expect(env(worker).FLEETPATCH_WORKER_METRICS_ADDRESS).toBe(`0.0.0.0:${portNumber(worker, 'metrics')}`);

    // The database URL only ever from a Secret; no secret value in the chart's output.
    for (const d of [server, worker, job]) expect(env(d).DATABASE_URL).toEqual({ secretKeyRef: { name: 'fleetpatch-database', key: 'database-url' } });
    expect(all.filter((m) => m.kind === 'Secret')).toEqual([]);
    for (const d of [server, worker]) expect(env(d).TEMPORAL_ADDRESS).toBe('temporal-frontend.temporal.svc:7233');

    // Migrations before any pod of a new version: a hook Job that reads only what exists before the release.
    expect(job.metadata.annotations).toMatchObject({ 'helm.sh/hook': 'pre-install,pre-upgrade' });
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    expect(container(job).envFrom).toBeUndefined();

    // The API's heap bounded below the pod's memory limit: idle agents' garbage would grow past it.
    expect(env(server).NODE_OPTIONS).toBe('--max-old-space-size=1024');

    // Unprivileged, read-only, no Kubernetes API token.
    for (const d of [server, worker, job]) {
      expect(d.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(container(d).securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
    }
  });

  it.skipIf(missing.helm)('with TLS in the pods, probes, scraping and the ingress speak HTTPS to the API', () => {
    const all = manifests('ci/tls-ingress-values.yaml');
    const server = all.find((m) => m.kind === 'Deployment' && m.metadata.name.endsWith('-server'))!;
    const ingress = all.find((m) => m.kind === 'Ingress')!;
    const container = server.spec.template.spec.containers[0];
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) expect(container[probe].httpGet.scheme).toBe('HTTPS');
    expect(server.spec.template.metadata.annotations['prometheus.io/scheme']).toBe('https');
    expect(ingress.metadata.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS', 'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600' });
    const mounted = container.volumeMounts.find((m: { name: string }) => m.name === 'tls').mountPath;
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect([env.FLEETPATCH_TLS_CERT, env.FLEETPATCH_TLS_KEY]).toEqual([`${mounted}/tls.crt`, `${mounted}/tls.key`]);
  });
});

