import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { freshDatabase, graphql, startTestApi, temporalSettings } from '../support/env.js';
import { spawnFleetpatch } from '../support/processes.js';

async function fleetpatch(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; output: string }> {
  const run = spawnFleetpatch(args, env);
  let stdout = '';
  run.child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  const { code } = await run.exited;
  return { code, stdout, output: run.output() };
}

describe('fleetpatch token create|list|revoke', () => {
  let api: ApiServer;
  let url: string;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    url = fresh.url;
    drop = fresh.drop;
    api = await startTestApi(temporalSettings(), { databaseUrl: url });
  });

  afterAll(async () => {
    await api.close();
    await drop();
  });

  it('creates a token printed once on stdout, that the API accepts with its role until it is revoked', async () => {
    const created = await fleetpatch(['token', 'create', '--role', 'VIEWER', '--name', 'grafana', '--expires', '30d'], { DATABASE_URL: url });
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^fp_[A-Za-z0-9_-]{43}$/);
    expect(created.output).toMatch(/Created VIEWER token [0-9a-f-]{36} "grafana", expires 20\d\d-/);

    const asViewer = await graphql(api.url, '{ machines { totalCount } }', { token: secret });
    expect(asViewer.errors).toBeUndefined();
    const tooLow = await graphql(api.url, 'mutation { runSelfCheck { id } }', { token: secret });
    expect(tooLow.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const list = await fleetpatch(['token', 'list', '--json'], { DATABASE_URL: url });
    const tokens = JSON.parse(list.stdout) as Array<{ id: string; name: string; role: string; state: string; lastUsedAt: string | null }>;
    const grafana = tokens.find((t) => t.name === 'grafana')!;
    expect(grafana).toMatchObject({ role: 'VIEWER', state: 'ACTIVE', lastUsedAt: expect.any(String) });
    expect(list.stdout).not.toContain(secret);
    expect(list.stdout).not.toMatch(/token_?hash/i);

    const revoked = await fleetpatch(['token', 'revoke', grafana.id], { DATABASE_URL: url });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/Revoked token .* "grafana" \(VIEWER\)/);
    const after = await graphql(api.url, '{ machines { totalCount } }', { token: secret });
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

    const listed = await fleetpatch(['token', 'list'], { DATABASE_URL: url });
    expect(listed.stdout).toMatch(new RegExp(`${grafana.id}\\s+VIEWER\\s+REVOKED`));

    // Both actions are in the audit log, as done from the command line.
    const admin = await fleetpatch(['token', 'create', '--role', 'ADMIN'], { DATABASE_URL: url });
    const audit = await graphql<{ auditEvents: { edges: Array<{ node: { action: string; actorKind: string; targetId: string } }> } }>(
      api.url,
      '{ auditEvents { edges { node { action actorKind targetId } } } }',
      { token: admin.stdout.trim() },
    );
    expect(audit.data!.auditEvents.edges.map((e) => e.node).filter((n) => n.targetId === grafana.id)).toEqual([
      { action: 'revokeApiToken', actorKind: 'CLI', targetId: grafana.id },
      { action: 'createApiToken', actorKind: 'CLI', targetId: grafana.id },
    ]);
  });

  it('says what is wrong: no DATABASE_URL, a bad role, a bad expiry, an unknown id', async () => {
    const noDb = await fleetpatch(['token', 'list'], { DATABASE_URL: '' });
    expect(noDb.code).toBe(1);
    expect(noDb.output).toMatch(/fleetpatch token list needs DATABASE_URL/);
    const badRole = await fleetpatch(['token', 'create', '--role', 'ROOT'], { DATABASE_URL: url });
    expect(badRole.output).toMatch(/--role must be one of VIEWER, OPERATOR, ADMIN; got "ROOT"/);
    const badExpiry = await fleetpatch(['token', 'create', '--role', 'ADMIN', '--expires', 'tomorrow'], { DATABASE_URL: url });
    expect(badExpiry.output).toMatch(/--expires: "tomorrow" is not an expiry: use 30d/);
    const unknown = await fleetpatch(['token', 'revoke', '00000000-0000-4000-8000-000000000000'], { DATABASE_URL: url });
    expect(unknown.code).toBe(1);
    expect(unknown.output).toMatch(/No API token with id 00000000-0000-4000-8000-000000000000/);
  });
});
