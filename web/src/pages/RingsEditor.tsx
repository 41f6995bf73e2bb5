import type { Environment, LimitUnit } from '../graphql.generated';
import { ENVIRONMENTS, newRing, type RingChoiceKind, type RingDraft, type SoakUnit } from '../rings';
import { words } from '../ui';
import { deploymentIdOf, formFields } from '../fields';

const { Field, described, idOf } = formFields(deploymentIdOf);

/** A ring's control: its label, the control, and the API's error for its field under it. */

/** The error of the first of these fields that has one (a ring's filter has three controls and one error line). */
const firstError = (errors: Record<string, string>, ...fields: string[]) => fields.map((f) => errors[f]).find(Boolean);

function LimitControl({ field, label, help, value, unit, onValue, onUnit, errors, unitLabel }: { field: string; label: string; help: string; value: string; unit: LimitUnit; onValue: (v: string) => void; onUnit: (u: LimitUnit) => void; errors: Record<string, string>; unitLabel: string }) {
  return (
    <Field field={field} label={label} help={help} errors={errors}>
      <div className="with-unit">
        <input type="number" min={0} value={value} onChange={(e) => onValue(e.target.value)} {...described(field, errors, true)} />
        <select aria-label={unitLabel} value={unit} onChange={(e) => onUnit(e.target.value as LimitUnit)}><option value="COUNT">machines</option><option value="PERCENT">% of the ring</option></select>
      </div>
    </Field>
  );
}

/**
 * The deployment form's rings: none (every target at once), or an ordered list, each choosing its
 * machines one way, with its own rate and the gate that decides whether the next ring starts.
 */
export function RingsEditor({ rings, onChange, machines, errors }: { rings: RingDraft[]; onChange: (rings: RingDraft[]) => void; machines: Array<{ id: string; name: string }>; errors: Record<string, string> }) {
  const set = (i: number, change: Partial<RingDraft>) => onChange(rings.map((r, j) => (j === i ? { ...r, ...change } : r)));
  const move = (i: number, by: -1 | 1) => {
    const next = [...rings];
    [next[i], next[i + by]] = [next[i + by]!, next[i]!];
    onChange(next);
  };
  return (
    <fieldset className="rings" aria-describedby="rings-help">
      <legend>Rings</legend>
      <p className="help" id="rings-help">
        {rings.length === 0
          ? 'No rings: every target is updated at once. Add rings to update a canary first and go on ring by ring, each behind a gate.'
          : 'Each ring takes its machines from the targets earlier rings left, and starts when the previous ring’s gate passes. Every ring installs the update set the first ring fixed. Targets left after the last ring are not updated: make the last ring 100 % to take them all.'}
      </p>
      {errors.rings && <p className="field-error" id={`${idOf('rings')}-error`} tabIndex={-1}>{errors.rings}</p>}
      <ol className="ring-list">
        {rings.map((ring, i) => {
          const at = `rings[${i}]`;
          const last = i === rings.length - 1;
          const filterError = firstError(errors, `${at}.filter`, `${at}.filter.tags`, `${at}.filter.nameContains`, `${at}.filter.environments`);
          return (
            <li key={ring.key} className="ring card" data-ring={i + 1}>
              <fieldset>
                <legend>Ring {i + 1}{ring.name.trim() && ring.name.trim() !== `Ring ${i + 1}` ? `: ${ring.name.trim()}` : ''}</legend>
                <div className="ring-tools">
                  <button type="button" className="secondary small" onClick={() => move(i, -1)} disabled={i === 0} aria-label={`Move ring ${i + 1} up`}>↑</button>
                  <button type="button" className="secondary small" onClick={() => move(i, 1)} disabled={last} aria-label={`Move ring ${i + 1} down`}>↓</button>
                  <button type="button" className="secondary small" onClick={() => onChange(rings.filter((_, j) => j !== i))} aria-label={`Remove ring ${i + 1}`}>Remove</button>
                </div>
                <div className="two">
                  <Field field={`${at}.name`} label={`Ring ${i + 1} name`} errors={errors}>
                    <input type="text" value={ring.name} onChange={(e) => set(i, { name: e.target.value })} {...described(`${at}.name`, errors)} />
                  </Field>
                  <fieldset className={`inline-choices${errors[at] ? ' invalid' : ''}`} aria-describedby={errors[at] ? `${idOf(at)}-error` : undefined}>
                    <legend>Ring {i + 1} machines</legend>
                    {(['percent', 'filter', 'machines'] as RingChoiceKind[]).map((by, k) => (
                      <label key={by}><input type="radio" name={`ring-${ring.key}-by`} id={k === 0 ? idOf(at) : undefined} checked={ring.by === by} onChange={() => set(i, { by })} /> {{ percent: 'A percentage', filter: 'A filter', machines: 'Chosen machines' }[by]}</label>
                    ))}
                    {errors[at] && <p className="field-error" id={`${idOf(at)}-error`}>{errors[at]}</p>}
                  </fieldset>
                </div>
                {ring.by === 'percent' && (
                  <Field field={`${at}.percent`} label={`Ring ${i + 1} percent of the targets left`} help="1 to 100, rounded up; only the last ring may take 100." errors={errors}>
                    <input type="number" min={1} max={100} value={ring.percent} onChange={(e) => set(i, { percent: e.target.value })} {...described(`${at}.percent`, errors, true)} />
                  </Field>
                )}
                {ring.by === 'filter' && (
                  <div className={filterError ? 'invalid' : undefined}>
                    <div className="two">
                      <Field field={`${at}.filter.tags`} label={`Ring ${i + 1} tags (all of them, comma-separated)`} errors={{}}>
                        <input type="text" value={ring.tags} onChange={(e) => set(i, { tags: e.target.value })} {...described(`${at}.filter.tags`, {})} id={idOf(`${at}.filter`)} aria-invalid={filterError ? true : undefined} />
                      </Field>
                      <Field field={`${at}.filter.nameContains`} label={`Ring ${i + 1} name contains`} errors={{}}>
                        <input type="text" value={ring.nameContains} onChange={(e) => set(i, { nameContains: e.target.value })} {...described(`${at}.filter.nameContains`, {})} />
                      </Field>
                    </div>
                    <fieldset className="inline-choices">
                      <legend>Ring {i + 1} environments (any of them; none: any)</legend>
                      {ENVIRONMENTS.map((env: Environment) => (
                        <label key={env}><input type="checkbox" checked={ring.environments.includes(env)} onChange={() => set(i, { environments: ring.environments.includes(env) ? ring.environments.filter((e) => e !== env) : [...ring.environments, env] })} /> {env === 'ON_PREMISES' ? 'On premises' : env === 'AZURE' ? 'Azure' : env}</label>
                      ))}
                    </fieldset>
                    {filterError && <p className="field-error" id={`${idOf(`${at}.filter`)}-error`}>{filterError}</p>}
                  </div>
                )}
                {ring.by === 'machines' && (
                  <div className={`field${errors[`${at}.machineIds`] ? ' invalid' : ''}`}>
                    <fieldset className="inline-choices ring-machines" id={idOf(`${at}.machineIds`)} tabIndex={-1} aria-describedby={errors[`${at}.machineIds`] ? `${idOf(`${at}.machineIds`)}-error` : `${idOf(`${at}.machineIds`)}-help`}>
                      <legend>Ring {i + 1} chosen machines ({ring.machineIds.length})</legend>
                      {machines.length === 0 && <span className="muted">No machine to choose from.</span>}
                      {machines.map((m) => (
                        <label key={m.id}><input type="checkbox" checked={ring.machineIds.includes(m.id)} onChange={() => set(i, { machineIds: ring.machineIds.includes(m.id) ? ring.machineIds.filter((x) => x !== m.id) : [...ring.machineIds, m.id] })} aria-label={`Ring ${i + 1}: ${m.name}`} /> {m.name}</label>
                      ))}
                    </fieldset>
                    <p className="help" id={`${idOf(`${at}.machineIds`)}-help`}>Each must be one of the deployment’s targets.</p>
                    {errors[`${at}.machineIds`] && <p className="field-error" id={`${idOf(`${at}.machineIds`)}-error`}>{errors[`${at}.machineIds`]}</p>}
                  </div>
                )}
                <div className="two">
                  <LimitControl field={`${at}.maxConcurrent`} label={`Ring ${i + 1} max concurrent machines`} help="Empty: the deployment’s." value={ring.maxConcurrent} unit={ring.maxConcurrentUnit} onValue={(v) => set(i, { maxConcurrent: v })} onUnit={(u) => set(i, { maxConcurrentUnit: u })} errors={errors} unitLabel={`Unit of ring ${i + 1} max concurrent machines`} />
                  <LimitControl field={`${at}.gate.maxFailures`} label={`Ring ${i + 1} gate: max failed machines`} help="Empty: none may fail. More halts the run." value={ring.maxFailures} unit={ring.maxFailuresUnit} onValue={(v) => set(i, { maxFailures: v })} onUnit={(u) => set(i, { maxFailuresUnit: u })} errors={errors} unitLabel={`Unit of ring ${i + 1} max failed machines`} />
                </div>
                {last ? (
                  <p className="help">The last ring’s gate promotes to no further ring: it has no soak and no approval.</p>
                ) : (
                  <div className="two">
                    <Field field={`${at}.gate.soakSeconds`} label={`Ring ${i + 1} gate: soak`} help="Wait this long after its last machine finished (up to a week). Empty: none." errors={errors}>
                      <div className="with-unit">
                        <input type="number" min={0} value={ring.soak} onChange={(e) => set(i, { soak: e.target.value })} {...described(`${at}.gate.soakSeconds`, errors, true)} />
                        <select aria-label={`Unit of ring ${i + 1} soak`} value={ring.soakUnit} onChange={(e) => set(i, { soakUnit: e.target.value as SoakUnit })}>
                          {(['SECONDS', 'MINUTES', 'HOURS'] as SoakUnit[]).map((u) => <option key={u} value={u}>{words(u).toLowerCase()}</option>)}
                        </select>
                      </div>
                    </Field>
                    <div className={`field${errors[`${at}.gate.requireApproval`] ? ' invalid' : ''}`}>
                      <label className="check"><input type="checkbox" id={idOf(`${at}.gate.requireApproval`)} checked={ring.requireApproval} onChange={(e) => set(i, { requireApproval: e.target.checked })} /> Ring {i + 1} gate: an operator approves before the next ring</label>
                      {errors[`${at}.gate.requireApproval`] && <p className="field-error">{errors[`${at}.gate.requireApproval`]}</p>}
                    </div>
                  </div>
                )}
              </fieldset>
            </li>
          );
        })}
      </ol>
      <button type="button" className="secondary" onClick={() => onChange([...rings, newRing(rings.length)])}>Add ring</button>
    </fieldset>
  );
}
