import { findApiToken } from '../../db/tokens.js';
import { findEnrollmentKey } from '../../db/enrollmentKeys.js';
import { findDeployment } from '../../db/deployments.js';
import { findMachine } from '../../db/machines.js';
import { nodeTypeOf, type NodeType } from '../../db/nodes.js';
import { findMachineRun, findRun } from '../../db/runs.js';
import { findSelfCheck } from '../../db/selfChecks.js';
import { roleAllows, type Role } from '../../fleet/access.js';
import { isUuid } from '../../fleet/ids.js';
import type { Principal } from '../auth.js';
import type { ApiServices } from '../context.js';
import { apiError, badUserInput } from '../errors.js';
import { NODE_TYPE } from './node.type.js';

/** Each node type's row, as its own query finds it (a removed machine or deleted deployment: none), and the role it needs. */
const FINDERS: Record<NodeType, { role: Role; find: (services: ApiServices, id: string) => Promise<object | undefined> }> = {
  Machine: { role: 'VIEWER', find: (s, id) => findMachine(s.database.db, id) },
  Deployment: { role: 'VIEWER', find: (s, id) => findDeployment(s.database.db, id) },
  DeploymentRun: { role: 'VIEWER', find: (s, id) => findRun(s.database.db, id) },
  MachineRun: { role: 'VIEWER', find: (s, id) => findMachineRun(s.database.db, id) },
  SelfCheck: { role: 'VIEWER', find: (s, id) => findSelfCheck(s.database.db, id) },
  ApiToken: { role: 'ADMIN', find: (s, id) => findApiToken(s.database.db, id) },
  EnrollmentKey: { role: 'ADMIN', find: (s, id) => findEnrollmentKey(s.database.db, id) },
};

export class NodeService {
  constructor(private readonly services: ApiServices) {}

  /** The object an id names, or null; FORBIDDEN for a type the principal's role may not read (apiTokens and enrollmentKeys are ADMIN's). */
  async find(id: string, principal: Principal): Promise<object | null> {
    if (!isUuid(id)) throw badUserInput('id', `${JSON.stringify(id.slice(0, 80))} is not an id this API hands out (ids are UUIDs); copy it from a query result.`);
    const type = await nodeTypeOf(this.services.database.db, id);
    if (!type) return null;
    const finder = FINDERS[type];
    if (!roleAllows(principal.role, finder.role)) throw apiError('FORBIDDEN', `This id names a ${type}, which needs the ${finder.role} role; your token has ${principal.role}.`);
    const row = await finder.find(this.services, id);
    return row ? Object.assign(row, { [NODE_TYPE]: type }) : null;
  }
}
