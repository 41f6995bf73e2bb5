import { cveCandidates, cveListFigures, latestImports, latestTrackerImport, trackerDescriptions, trackerFixesOf } from '../../db/cves.js';
import { scheduledDeployments, selectionOf } from '../../db/deployments.js';
import { findMachines } from '../../db/machines.js';
import { countedCveSummaries, cveExposures, cveIdProblem, highestSeverity, normaliseCveId, type CveExposure, type CveListFilter, type CveSummary, type ScheduleCandidate } from '../../fleet/cves.js';
import { importCveFeed, TRACKER_SOURCE, TrackerImportError } from '../../cves/trackerImport.js';
import type { CveFeedFormat } from '../../fleet/osv.js';
import type { ApiServices } from '../context.js';
import { scheduleOf } from '../deployments/deployment.service.js';
import { apiError, badUserInput } from '../errors.js';

/** A CVE as the API answers it, with its exposures when they were computed to answer it. */
export type CveAnswer = CveSummary & { description: string | null; exposures?: CveExposure[] };

export class CveService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  /** The id asked for, upper-cased, or BAD_USER_INPUT at `field`. */
  static validId(raw: string, field = 'id'): string {
    const id = normaliseCveId(raw);
    const problem = cveIdProblem(id);
    if (problem) throw badUserInput(field, problem);
    return id;
  }

  /** The machines exposed to one CVE, computed from the latest assessments, the tracker and the schedules. */
  async exposures(cveId: string): Promise<CveExposure[]> {
    const [{ current, history }, tracker, deployments] = await Promise.all([cveCandidates(this.db, cveId), trackerFixesOf(this.db, cveId), scheduledDeployments(this.db)]);
    const schedules: ScheduleCandidate[] = deployments.map((d) => ({
      id: d.id,
      name: d.name,
      osType: d.osType,
      machineIds: d.machineIds,
      targetFilter: d.targetFilter,
      selection: selectionOf(d),
      schedule: scheduleOf(d),
      paused: d.paused,
    }));
    const candidates = [...new Map(current.map((c) => [c.machine.id, c.machine])).values()];
    return cveExposures({ cveId, current, history, candidates, tracker, deployments: schedules, now: this.services.now() });
  }

  async cve(rawId: string): Promise<CveAnswer> {
    const id = CveService.validId(rawId);
    const [exposures, descriptions] = await Promise.all([this.exposures(id), trackerDescriptions(this.db, [id])]);
    return {
      id,
      severity: highestSeverity(exposures.map((e) => e.severity)),
      machineCount: exposures.length,
      sources: [...new Set(exposures.map((e) => e.source))].sort(),
      description: descriptions.get(id) ?? null,
      exposures,
    };
  }

  async cves(filter: CveListFilter, page: { offset: number; limit: number }): Promise<{ rows: CveAnswer[]; totalCount: number }> {
    if (filter.idContains !== undefined && filter.idContains.length > 40) throw badUserInput('filter.idContains', 'idContains is at most 40 characters.');
    // The advisories' part from maintained counts; the imported fixes' part is still compared per
    // machine (dpkg's order, docs/fleet-counts.md "Still reading the whole fleet").
    const { advisory, tracker } = await cveListFigures(this.db);
    const all = countedCveSummaries(advisory, tracker, filter);
    const slice = all.slice(page.offset, page.offset + page.limit);
    const descriptions = await trackerDescriptions(this.db, slice.map((c) => c.id));
    return { rows: slice.map((c) => ({ ...c, description: descriptions.get(c.id) ?? null })), totalCount: all.length };
  }

  machines(ids: string[]) {
    return findMachines(this.db, ids);
  }

  lastImport() {
    return latestTrackerImport(this.db, TRACKER_SOURCE);
  }

  imports() {
    return latestImports(this.db);
  }

  /** Imports the tracker or OSV records from an http(s) URL; BAD_USER_INPUT with the reason's code when it cannot. */
  async importTracker(url: string, format?: CveFeedFormat) {
    try {
      return await importCveFeed(this.db, url.trim(), { allowPath: false, ...(format ? { format } : {}) });
    } catch (error) {
      if (error instanceof TrackerImportError) throw apiError('BAD_USER_INPUT', error.message, { field: 'url', reason: error.code });
      throw error;
    }
  }
}
