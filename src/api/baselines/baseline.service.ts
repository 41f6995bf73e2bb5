import { findBaseline, listBaselines, saveBaseline, type BaselineRow } from '../../db/baselines.js';
import { validateBaselineInput, type BaselineInput } from '../../fleet/baselines.js';
import type { ApiServices } from '../context.js';
import { apiError, badUserInput, notFound } from '../errors.js';

const isUuid = (id: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);

export class BaselineService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  list() {
    return listBaselines(this.db);
  }

  async find(id: string): Promise<BaselineRow | null> {
    return isUuid(id) ? ((await findBaseline(this.db, id)) ?? null) : null;
  }

  /** Creates (id null), replaces or deletes (input null) a baseline; every machine's compliance follows before it answers. */
  async save(id: string | null, input: BaselineInput | null): Promise<BaselineRow | null> {
    if (id !== null && !isUuid(id)) throw notFound(`No baseline with id ${id}.`);
    let values = null;
    if (input) {
      const checked = validateBaselineInput(input);
      if (!checked.ok) throw badUserInput(checked.field, `${checked.message}.`);
      values = checked.baseline;
    }
    const row = await saveBaseline(this.db, id, values);
    if (row === 'NAME_TAKEN') throw apiError('CONFLICT', `A baseline named "${values!.name}" exists already; choose another name.`, { field: 'name' });
    if (!row) throw notFound(`No baseline with id ${id}.`);
    return row;
  }
}
