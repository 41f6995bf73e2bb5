import { cveCandidates, cveCandidatesByName, cveFiguresWithImports, cveListFigures, cveStoredRows, latestImports, latestTrackerImport, trackerDescriptions, trackerFixesOf } from '../../db/cves.js';
import { scheduledDeployments, selectionOf } from '../../db/deployments.js';
import { findMachines } from '../../db/machines.js';
import { countedCveSummaries, cveExposureRead, cveExposures, type CveExposureRead, cveIdProblem, importedCveFigures, normaliseCveId, type CveExposure, type CveListFilter, type CveSummary, type ScheduleCandidate } from '../../fleet/cves.js';
import { importCveFeed, TRACKER_SOURCE, TrackerImportError } from '../../cves/trackerImport.js';
import { MISSING_MACHINES_ROWS_BUDGET } from '../../fleet/missingUpdates.js';
import type { CveFeedFormat } from '../../fleet/osv.js';
import type { ApiServices } from '../context.js';
import { scheduleOf } from '../deployments/deployment.service.js';
import { apiError, badUserInput } from '../errors.js';

/**
 * A CVE as the API answers it: with the figures that choose how a page of its exposures is read
 * (or, where a caller computed them, every exposure).
 */
export type CveAnswer = CveSummary & { description: string | null; exposures?: CveExposure[]; figures?: { exposed: number; fleet: number; imported: boolean } };

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

  /** Every machine exposed to one CVE, computed from the latest assessments, the tracker and the schedules. */
  async exposures(cveId: string): Promise<CveExposure[]> {
    return this.exposuresOf(cveId, cveCandidates(this.db, cveId));
  }

  /**
   * The machines exposed to one CVE from these candidates (every exposed machine's, or a page's),
   * by name. The imported fixes are the CVE's own few rows, the schedules the fleet's few deployments.
   */
  private async exposuresOf(cveId: string, read: ReturnType<typeof cveCandidates>): Promise<CveExposure[]> {
    const [{ current, history }, tracker, deployments] = await Promise.all([read, trackerFixesOf(this.db, cveId), scheduledDeployments(this.db)]);
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

  /**
   * One CVE: its count, severity and sources from the advisories' maintained figures
   * (docs/fleet-counts.md) and, when a fix is imported for it, the machines its fixes expose counted
   * from maintained counts (maintainedImportedGroups, migration 0048); its exposures are read a page at a time (exposurePage).
   */
  async cve(rawId: string): Promise<CveAnswer> {
    return this.answer(CveService.validId(rawId));
  }

  /** cve(id) for an id already checked (tests call it with the short ids of their fleets). */
  async answer(id: string): Promise<CveAnswer> {
    const [figures, descriptions] = await Promise.all([cveFiguresWithImports(this.services.database.db, id), trackerDescriptions(this.db, [id])]);
    const { machineCount, severity, sources } = importedCveFigures({ exposed: figures.exposed, severity: figures.severity }, figures.groups);
    return {
      id,
      severity,
      machineCount,
      sources,
      description: descriptions.get(id) ?? null,
      figures: { exposed: machineCount, fleet: figures.fleet, imported: figures.imported },
    };
  }

  /**
   * A page of the CVE's exposed machines, by name, and how many there are: cut from every exposed
   * machine, or (a CVE many machines are exposed to) read by walking the machines in name order,
   * with the answer's count (cveExposureRead).
   */
  async exposurePage(
    cve: CveAnswer,
    page: { offset: number; limit: number },
    /** The read to take whatever the figures say (tests hold both to the recompute; benches measure them). */
    forced?: CveExposureRead,
  ): Promise<{ rows: CveExposure[]; totalCount: number }> {
    const cut = (all: CveExposure[]) => ({ rows: all.slice(page.offset, page.offset + page.limit), totalCount: all.length });
    if (cve.exposures) return cut(cve.exposures);
    if (!cve.figures) return cut(await this.exposures(cve.id));
    const { exposed, fleet } = cve.figures;
    if (exposed === 0) return { rows: [], totalCount: 0 };
    const wanted = page.offset + page.limit + 1;
    let read = forced ?? cveExposureRead({ exposed, fleet, wanted });
    if (read === 'EVERY_MACHINE' && !forced) read = cveExposureRead({ exposed, fleet, wanted, storedRows: await cveStoredRows(this.db, cve.id, MISSING_MACHINES_ROWS_BUDGET) });
    if (read === 'EVERY_MACHINE') return cut(await this.exposures(cve.id));
    const rows = await this.exposuresOf(cve.id, cveCandidatesByName(this.services.database.db, cve.id, page.offset, page.limit, cve.figures.imported));
    return { rows, totalCount: exposed };
  }

  async cves(filter: CveListFilter, page: { offset: number; limit: number }): Promise<{ rows: CveAnswer[]; totalCount: number }> {
    if (filter.idContains !== undefined && filter.idContains.length > 40) throw badUserInput('filter.idContains', 'idContains is at most 40 characters.');
    // Both parts from maintained counts (docs/fleet-counts.md): one row per CVE and kind, no machine read.
    const { advisory, imported } = await cveListFigures(this.db);
    const all = countedCveSummaries(advisory, imported, filter);
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
