import { createEnrollmentKey, enrollmentKeysPage, revokeEnrollmentKey, type EnrollmentKeyRow } from '../../db/enrollmentKeys.js';
import { enrollmentKeyLimits, enrollmentRefusal } from '../../fleet/enrollment.js';
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
    const limits = enrollmentKeyLimits(input, this.services.now());
    if ('problem' in limits) throw badUserInput(limits.field, limits.problem);
    const problem = tagProblem(input.defaultTags ?? []);
    if (problem) throw badUserInput('defaultTags', `defaultTags: ${problem}.`);
    return createEnrollmentKey(this.services.database.db, {
      description,
      expiresAt: limits.expiresAt,
      maxUses: limits.maxUses,
      defaultTags: normaliseTags(input.defaultTags ?? []),
    });
  }

  page(page: { offset: number; limit: number }) {
    return enrollmentKeysPage(this.services.database.db, page);
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
