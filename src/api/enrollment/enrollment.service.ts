import { createEnrollmentKey, listEnrollmentKeys, revokeEnrollmentKey, type EnrollmentKeyRow } from '../../db/enrollmentKeys.js';
import { enrollmentRefusal } from '../../fleet/enrollment.js';
import { normaliseTags, tagProblem } from '../../fleet/tags.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';
import type { CreateEnrollmentKeyInput } from './enrollment.type.js';

export class EnrollmentService {
  constructor(private readonly services: ApiServices) {}

  async create(input: CreateEnrollmentKeyInput) {
    const description = input.description.trim();
    if (description.length < 1 || description.length > 200) {
      throw badUserInput('description', 'description must be 1 to 200 characters.');
    }
    if (input.expiresAt && input.expiresAt <= this.services.now()) {
      throw badUserInput('expiresAt', `expiresAt must be in the future; got ${input.expiresAt.toISOString()}.`);
    }
    if (input.maxUses !== undefined && input.maxUses !== null && (input.maxUses < 1 || input.maxUses > 1_000_000)) {
      throw badUserInput('maxUses', `maxUses must be between 1 and 1,000,000, or null for no limit; got ${input.maxUses}.`);
    }
    const problem = tagProblem(input.defaultTags ?? []);
    if (problem) throw badUserInput('defaultTags', `defaultTags: ${problem}.`);
    return createEnrollmentKey(this.services.database.db, {
      description,
      expiresAt: input.expiresAt ?? null,
      maxUses: input.maxUses ?? null,
      defaultTags: normaliseTags(input.defaultTags ?? []),
    });
  }

  list() {
    return listEnrollmentKeys(this.services.database.db);
  }

  async revoke(id: string) {
    const key = await revokeEnrollmentKey(this.services.database.db, id);
    if (!key) throw notFound(`No enrollment key with id ${id}.`);
    return key;
  }

  state(key: EnrollmentKeyRow): 'ACTIVE' | 'REVOKED' | 'EXPIRED' | 'USED_UP' {
    if (enrollmentRefusal(key, this.services.now()) === null) return 'ACTIVE';
    if (key.revokedAt) return 'REVOKED';
    if (key.expiresAt && key.expiresAt <= this.services.now()) return 'EXPIRED';
    return 'USED_UP';
  }
}
