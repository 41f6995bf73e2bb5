import { readComplianceHistory, takeComplianceSnapshot } from '../../db/complianceHistory.js';
import { compliantShare, historyQuery, historySeries, type HistoryQuery, type HistoryQueryInput } from '../../fleet/complianceHistory.js';
import type { ApiServices } from '../context.js';
import { apiError } from '../errors.js';

/**
 * The history query a request means (historyQuery's rules: defaults, dates, range), or
 * BAD_USER_INPUT with the field and a stable `reason`. The query and its export both check here.
 */
export function checkedHistoryQuery(input: HistoryQueryInput, now: Date): HistoryQuery {
  const checked = historyQuery(input, now);
  if ('problem' in checked) throw apiError('BAD_USER_INPUT', checked.problem.message, { field: checked.problem.field, reason: checked.problem.reason });
  return checked.query;
}

export class ComplianceHistoryService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  /** The history a request asks for; BAD_USER_INPUT with the field and a stable `reason` when it cannot be answered. */
  async history(input: HistoryQueryInput) {
    const query = checkedHistoryQuery(input, this.services.now());
    const { rows, snapshots } = await readComplianceHistory(this.db, query);
    return {
      ...query,
      snapshots,
      series: historySeries(rows).map((s) => ({ ...s, points: s.points.map((p) => ({ ...p, compliantShare: compliantShare(p) })) })),
    };
  }

  /** Today's snapshot, now (replacing today's if there is one). */
  async takeSnapshot() {
    const outcome = await takeComplianceSnapshot(this.db, { now: this.services.now(), thresholds: this.services.fleet.thresholds, trigger: 'ON_DEMAND' });
    return { snapshot: outcome.snapshot, replaced: outcome.action === 'REPLACE' };
  }
}
