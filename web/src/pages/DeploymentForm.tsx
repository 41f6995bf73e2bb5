import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { useClient, useQuery } from 'urql';
import {
  CreateDocument, FormMachinesDocument, ForecastDocument, PreviewDocument, RunNowDocument,
  type Classification, type DeploymentInput, type ForecastQuery, type Frequency, type LimitUnit, type OsType, type PreviewQuery, type RebootSetting, type RecurrenceInput, type ScheduleInput, type WeekDay,
} from '../graphql.generated';
import { problemsOf, type ApiProblem } from '../client';
import { Link, navigate } from '../router';
import { Badge, fromNow, Page, TableBox, words } from '../ui';
import { Readiness } from './Computers';
import { browserTimeZone, timeZones, wallTimeToIso } from '../zone';
import { ringFields, ringInput, type RingDraft } from '../rings';
import { RingsEditor } from './RingsEditor';
import { stepFields, stepInput, stepProblems, type StepDraft } from '../steps';
import { StepsEditor } from './StepsEditor';
import { deploymentIdOf, formFields } from '../fields';
import { CLASSIFICATIONS_BY_OS, COMPLIANCE_CLASSIFICATIONS, OS_TYPES } from '../../../src/domain/vocabulary.js';

const WEEK_DAYS = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'];
const REBOOT: Record<string, string> = {
  IF_REQUIRED: 'If required: when an update or the machine needs it',
  NEVER: 'Never',
  ALWAYS: 'Always, after installing',
  REBOOT_ONLY: 'Reboot only: install nothing',
};

type Forecast = ForecastQuery['scheduleForecast'];
type Preview = PreviewQuery['previewDeployment'];

/** The form's fields, keyed as the API names them in `extensions.field` (schedule.recurrence.weekDays...). */
const FIELDS = [
  'name', 'osType', 'machineIds', 'targetFilter.tags', 'targetFilter.nameContains', 'classifications', 'includePatterns', 'excludePatterns',
  'schedule.startAt', 'schedule.timeZone', 'schedule.endAt', 'schedule.recurrence.frequency', 'schedule.recurrence.every', 'schedule.recurrence.weekDays',
  'schedule.recurrence.monthDay', 'schedule.recurrence.nthWeekday.ordinal', 'schedule.recurrence.nthWeekday.weekDay', 'schedule.recurrence.offsetDays',
  'windowMinutes', 'rebootSetting', 'maxConcurrent', 'maxFailures',
];
/** The form field an API error belongs to, among `fields`: the longest field name it starts with (classifications[2] → classifications). */
function fieldOf(apiField: string | undefined, fields: string[]): string | null {
  if (!apiField) return null;
  const candidates = fields.filter((f) => apiField === f || apiField.startsWith(`${f}.`) || apiField.startsWith(`${f}[`));
  if (candidates.length > 0) return candidates.sort((a, b) => b.length - a.length)[0]!;
  if (apiField.startsWith('schedule.recurrence')) return 'schedule.recurrence.frequency';
  if (apiField.startsWith('schedule')) return 'schedule.startAt';
  return null;
}
const { Field, described, idOf } = formFields(deploymentIdOf);
const lines = (text: string) => text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);

/** The line under the schedule: when it runs next, or that it runs only when started. */
function nextRunText(onDemand: boolean, forecast: { value: Forecast | null; problem: string | null }): string {
  if (onDemand) return 'No scheduled run: it runs only when started with Run now.';
  if (forecast.problem) return `Next scheduled run: not known yet (${forecast.problem}).`;
  const f = forecast.value;
  if (!f) return 'Next scheduled run: …';
  const [next, ...later] = f.nextRuns;
  if (!next) return `No run left: ${f.description}.`;
  const then = later.length > 0 ? ` Then ${later.map((r) => new Date(r).toLocaleString()).join(', ')}.` : '';
  return `Next scheduled run: ${new Date(next).toLocaleString()} (${fromNow(next)}). ${f.description}.${then}`;
}

export function DeploymentFormPage() {
  const client = useClient();
  const [name, setName] = useState('');
  const [osType, setOsType] = useState('LINUX');
  const [machineIds, setMachineIds] = useState<string[]>([]);
  const [machineSearch, setMachineSearch] = useState('');
  const [tags, setTags] = useState('');
  const [nameContains, setNameContains] = useState('');
  const [classifications, setClassifications] = useState<string[]>([...COMPLIANCE_CLASSIFICATIONS]);
  const [include, setInclude] = useState('');
  const [exclude, setExclude] = useState('');
  const [startAt, setStartAt] = useState('');
  const [endAt, setEndAt] = useState('');
  const [timeZone, setTimeZone] = useState(browserTimeZone);
  const [frequency, setFrequency] = useState('ONCE');
  const [every, setEvery] = useState('1');
  const [weekDays, setWeekDays] = useState<string[]>([]);
  const [monthlyBy, setMonthlyBy] = useState<'day' | 'nth'>('day');
  const [monthDay, setMonthDay] = useState('1');
  const [ordinal, setOrdinal] = useState('2');
  const [nthDay, setNthDay] = useState('TUESDAY');
  const [offsetDays, setOffsetDays] = useState('0');
  const [windowMinutes, setWindowMinutes] = useState('120');
  const [rebootSetting, setRebootSetting] = useState('IF_REQUIRED');
  const [maxConcurrent, setMaxConcurrent] = useState('');
  const [maxConcurrentUnit, setMaxConcurrentUnit] = useState('COUNT');
  const [maxFailures, setMaxFailures] = useState('');
  const [maxFailuresUnit, setMaxFailuresUnit] = useState('COUNT');
  const [rings, setRings] = useState<RingDraft[]>([]);
  const [steps, setSteps] = useState<StepDraft[]>([]);
  const [runNow, setRunNow] = useState(false);
  const [onDemand, setOnDemand] = useState(false);
  const [forecast, setForecast] = useState<{ value: Forecast | null; problem: string | null }>({ value: null, problem: null });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formProblems, setFormProblems] = useState<ApiProblem[]>([]);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<Preview | null>(null);
  const formRef = useRef<HTMLFormElement>(null);
  const zones = useMemo(timeZones, []);

  const [machines] = useQuery({ query: FormMachinesDocument, variables: { os: osType as OsType } });
  const choices = (machines.data?.machines.edges.map((e) => e.node) ?? []).filter((m) => !machineSearch || m.name.toLowerCase().includes(machineSearch.toLowerCase()));

  const toggle = (list: string[], value: string, set: (next: string[]) => void) => set(list.includes(value) ? list.filter((v) => v !== value) : [...list, value]);

  // The form keeps its choices as the strings of its controls, whose options are the schema's enum
  // values; they become the API's types here, and the API checks them again.
  function schedule(): ScheduleInput | undefined {
    const recurrence: RecurrenceInput = { frequency: frequency as Frequency, every: Number(every) };
    if (frequency === 'WEEKLY') recurrence.weekDays = weekDays as WeekDay[];
    if (frequency === 'MONTHLY' && monthlyBy === 'day') recurrence.monthDay = Number(monthDay);
    if (frequency === 'MONTHLY' && monthlyBy === 'nth') Object.assign(recurrence, { nthWeekday: { ordinal: Number(ordinal), weekDay: nthDay as WeekDay }, offsetDays: Number(offsetDays) });
    const zone = timeZone.trim();
    const instant = (wall: string) => (wall ? (wallTimeToIso(wall, zone) ?? wallTimeToIso(wall, 'UTC')) : undefined);
    return onDemand ? undefined : { timeZone: zone, startAt: instant(startAt), endAt: instant(endAt), recurrence };
  }

  function input(): DeploymentInput {
    const limit = (value: string, unit: string) => (value.trim() === '' ? undefined : { value: Number(value), unit: unit as LimitUnit });
    const filterTags = lines(tags);
    return {
      name: name.trim(),
      osType: osType as OsType,
      machineIds,
      targetFilter: filterTags.length > 0 || nameContains.trim() ? { tags: filterTags, nameContains: nameContains.trim() || undefined } : undefined,
      classifications: classifications as Classification[],
      includePatterns: lines(include),
      excludePatterns: lines(exclude),
      schedule: schedule(),
      onDemandOnly: onDemand,
      windowMinutes: Number(windowMinutes),
      rebootSetting: rebootSetting as RebootSetting,
      maxConcurrent: limit(maxConcurrent, maxConcurrentUnit),
      maxFailures: limit(maxFailures, maxFailuresUnit),
      rings: rings.length > 0 ? rings.map((r, i) => ringInput(r, i === rings.length - 1)) : undefined,
      steps: steps.length > 0 ? steps.map(stepInput) : undefined,
    };
  }

  // When the schedule as typed runs next, said under it while the operator types (the server's rules
  // and Temporal's calendar, not a guess made here).
  const scheduleKey = JSON.stringify([onDemand, startAt, endAt, timeZone, frequency, every, weekDays, monthlyBy, monthDay, ordinal, nthDay, offsetDays, windowMinutes]);
  useEffect(() => {
    let current = true;
    const timer = setTimeout(() => {
      void client
        .query(ForecastDocument, { schedule: schedule(), onDemandOnly: onDemand, windowMinutes: Number(windowMinutes) || 120 }, { requestPolicy: 'network-only' })
        .toPromise()
        .then((result) => {
          if (current) setForecast({ value: result.data?.scheduleForecast ?? null, problem: problemsOf(result.error)[0]?.message ?? null });
        });
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [client, scheduleKey]);

  /** Shows each problem at its field, focuses the first one; the rest go above the form. */
  function show(problems: ApiProblem[]) {
    const atFields: Record<string, string> = {};
    const general: ApiProblem[] = [];
    const fields = [...FIELDS, ...ringFields(rings.length), ...stepFields(steps)];
    for (const p of problems) {
      const field = fieldOf(p.field, fields);
      if (field) atFields[field] = p.message;
      else general.push(p);
    }
    setErrors(atFields);
    setFormProblems(general);
    const first = fields.find((f) => atFields[f]);
    requestAnimationFrame(() => {
      const target = first ? document.getElementById(idOf(first)) ?? formRef.current?.querySelector<HTMLElement>(`[data-field="${first}"] input`) : document.getElementById('form-problems');
      target?.focus();
    });
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    // A body that is not JSON never reaches the API as such: said at its field, like the API's errors.
    const local = stepProblems(steps);
    if (local.length > 0) return show(local.map((p) => ({ ...p, code: 'BAD_USER_INPUT' })));
    setBusy(true);
    const created = await client.mutation(CreateDocument, { input: input() }, { additionalTypenames: ['Deployment'] }).toPromise();
    if (created.error || !created.data) {
      setBusy(false);
      return show(problemsOf(created.error));
    }
    const id = created.data.createDeployment.id;
    if (runNow) {
      const run = await client.mutation(RunNowDocument, { id }).toPromise();
      setBusy(false);
      if (run.data) return navigate(`/runs/${run.data.runDeploymentNow.id}`);
    }
    setBusy(false);
    navigate(`/deployments/${id}`);
  }

  async function showPreview() {
    const local = stepProblems(steps);
    if (local.length > 0) return show(local.map((p) => ({ ...p, code: 'BAD_USER_INPUT' })));
    setBusy(true);
    const result = await client.query(PreviewDocument, { input: input() }, { requestPolicy: 'network-only' }).toPromise();
    setBusy(false);
    if (result.error || !result.data) {
      setPreview(null);
      return show(problemsOf(result.error));
    }
    show([]);
    setPreview(result.data.previewDeployment);
  }

  const errorCount = Object.keys(errors).length + formProblems.length;
  return (
    <Page title="New deployment">
      <form ref={formRef} onSubmit={(e) => void submit(e)} noValidate className="deployment-form" aria-describedby={errorCount ? 'form-problems' : undefined}>
        {errorCount > 0 && (
          <div id="form-problems" role="alert" className="alert" tabIndex={-1}>
            <p>{Object.keys(errors).length > 0 ? `Fix ${Object.keys(errors).length === 1 ? 'the field' : 'the fields'} marked below.` : 'The deployment was not saved.'}</p>
            {formProblems.map((p, i) => <p key={i}>{p.message}</p>)}
          </div>
        )}

        <fieldset>
          <legend>What</legend>
          <Field field="name" label="Name" help="Unique among deployments." errors={errors}>
            <input type="text" value={name} onChange={(e) => setName(e.target.value)} {...described('name', errors, true)} />
          </Field>
          <fieldset className="inline-choices" data-field="osType">
            <legend>OS type</legend>
            {OS_TYPES.map((os) => (
              <label key={os}><input type="radio" name="osType" value={os} checked={osType === os} onChange={() => { setOsType(os); setMachineIds([]); setClassifications([...COMPLIANCE_CLASSIFICATIONS]); }} /> {words(os)}</label>
            ))}
          </fieldset>
          <fieldset className={`inline-choices${errors.classifications ? ' invalid' : ''}`} data-field="classifications" aria-describedby={errors.classifications ? `${idOf('classifications')}-error` : undefined}>
            <legend>Update classifications</legend>
            {CLASSIFICATIONS_BY_OS[osType as OsType].map((c, i) => (
              <label key={c}><input type="checkbox" id={i === 0 ? idOf('classifications') : undefined} checked={classifications.includes(c)} onChange={() => toggle(classifications, c, setClassifications)} /> {words(c)}</label>
            ))}
            {errors.classifications && <p className="field-error" id={`${idOf('classifications')}-error`}>{errors.classifications}</p>}
          </fieldset>
          <div className="two">
            <Field field="includePatterns" label="Include (one per line)" help={osType === 'LINUX' ? 'Always install these packages: names with * and ?, or name=version.' : 'KB ids to always install, e.g. KB5034441.'} errors={errors}>
              <textarea rows={3} value={include} onChange={(e) => setInclude(e.target.value)} {...described('includePatterns', errors, true)} />
            </Field>
            <Field field="excludePatterns" label="Exclude (one per line)" help="Never install these; exclusion wins over inclusion." errors={errors}>
              <textarea rows={3} value={exclude} onChange={(e) => setExclude(e.target.value)} {...described('excludePatterns', errors, true)} />
            </Field>
          </div>
        </fieldset>

        <fieldset>
          <legend>Where</legend>
          <div className={`field${errors.machineIds ? ' invalid' : ''}`} data-field="machineIds">
            <label htmlFor="machine-filter">Machines ({machineIds.length} selected)</label>
            <input id="machine-filter" type="search" placeholder="Filter by name" value={machineSearch} onChange={(e) => setMachineSearch(e.target.value)} />
            <TableBox label="Machines to pick from">
              <table className="pick" id={idOf('machineIds')} tabIndex={-1} aria-describedby={errors.machineIds ? `${idOf('machineIds')}-error` : undefined}>
                <thead><tr><th scope="col"><span className="sr-only">Selected</span></th><th scope="col">Name</th><th scope="col">Update agent readiness</th><th scope="col">Compliance</th><th scope="col" className="num">Critical and security</th><th scope="col" className="num">Other</th></tr></thead>
                <tbody>
                  {choices.map((m) => (
                    <tr key={m.id}>
                      <td><input type="checkbox" id={`pick-${m.id}`} checked={machineIds.includes(m.id)} onChange={() => toggle(machineIds, m.id, setMachineIds)} aria-label={`Deploy to ${m.name}`} /></td>
                      <td><label htmlFor={`pick-${m.id}`}>{m.name}</label></td>
                      <td><Readiness detail={m.readinessDetail} /></td>
                      <td><Badge value={m.compliance} /></td>
                      <td className="num">{m.criticalAndSecurityCount}</td>
                      <td className="num">{m.otherCount}</td>
                    </tr>
                  ))}
                  {machines.data && choices.length === 0 && <tr><td colSpan={6} className="muted">No {words(osType)} machine{machineSearch ? ' matches' : ''}.</td></tr>}
                </tbody>
              </table>
            </TableBox>
            {errors.machineIds && <p className="field-error" id={`${idOf('machineIds')}-error`}>{errors.machineIds}</p>}
          </div>
          <p className="help">And, evaluated at each run, machines matching:</p>
          <div className="two">
            <Field field="targetFilter.tags" label="Tags (all of them, comma-separated)" errors={errors}>
              <input type="text" value={tags} onChange={(e) => setTags(e.target.value)} {...described('targetFilter.tags', errors)} />
            </Field>
            <Field field="targetFilter.nameContains" label="Name contains" errors={errors}>
              <input type="text" value={nameContains} onChange={(e) => setNameContains(e.target.value)} {...described('targetFilter.nameContains', errors)} />
            </Field>
          </div>
        </fieldset>

        <RingsEditor rings={rings} onChange={setRings} machines={machines.data?.machines.edges.map((e) => e.node) ?? []} errors={errors} />

        <StepsEditor steps={steps} onChange={setSteps} errors={errors} />

        <fieldset>
          <legend>When</legend>
          <fieldset className="inline-choices" data-field="onDemandOnly">
            <legend>Runs</legend>
            <label><input type="radio" name="when" checked={!onDemand} onChange={() => setOnDemand(false)} /> On a schedule</label>
            <label><input type="radio" name="when" checked={onDemand} onChange={() => setOnDemand(true)} /> On demand only (no schedule)</label>
          </fieldset>
          {!onDemand && <>
          <div className="two">
            <Field field="schedule.startAt" label="Start" help="Empty: in 30 minutes. Read in the time zone below." errors={errors}>
              <input type="datetime-local" value={startAt} onChange={(e) => setStartAt(e.target.value)} {...described('schedule.startAt', errors, true)} />
            </Field>
            <Field field="schedule.timeZone" label="Time zone" help="IANA name, e.g. Europe/Paris." errors={errors}>
              <input type="text" list="time-zones" value={timeZone} onChange={(e) => setTimeZone(e.target.value)} {...described('schedule.timeZone', errors, true)} />
            </Field>
            <datalist id="time-zones">{zones.map((z) => <option key={z} value={z} />)}</datalist>
          </div>
          <div className="two">
            <Field field="schedule.recurrence.frequency" label="Recurrence" errors={errors}>
              <select value={frequency} onChange={(e) => setFrequency(e.target.value)} {...described('schedule.recurrence.frequency', errors)}>
                {['ONCE', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'].map((f) => <option key={f} value={f}>{words(f)}</option>)}
              </select>
            </Field>
            {frequency !== 'ONCE' && (
              <Field field="schedule.recurrence.every" label={`Every how many ${{ HOURLY: 'hours', DAILY: 'days', WEEKLY: 'weeks', MONTHLY: 'months' }[frequency]}`} errors={errors}>
                <input type="number" min={1} value={every} onChange={(e) => setEvery(e.target.value)} {...described('schedule.recurrence.every', errors)} />
              </Field>
            )}
          </div>
          {frequency === 'WEEKLY' && (
            <fieldset className={`inline-choices${errors['schedule.recurrence.weekDays'] ? ' invalid' : ''}`} data-field="schedule.recurrence.weekDays">
              <legend>On</legend>
              {WEEK_DAYS.map((d, i) => <label key={d}><input type="checkbox" id={i === 0 ? idOf('schedule.recurrence.weekDays') : undefined} checked={weekDays.includes(d)} onChange={() => toggle(weekDays, d, setWeekDays)} /> {words(d)}</label>)}
              {errors['schedule.recurrence.weekDays'] && <p className="field-error">{errors['schedule.recurrence.weekDays']}</p>}
            </fieldset>
          )}
          {frequency === 'MONTHLY' && (
            <>
              <fieldset className="inline-choices">
                <legend>On</legend>
                <label><input type="radio" name="monthlyBy" checked={monthlyBy === 'day'} onChange={() => setMonthlyBy('day')} /> A day of the month</label>
                <label><input type="radio" name="monthlyBy" checked={monthlyBy === 'nth'} onChange={() => setMonthlyBy('nth')} /> The nth weekday (e.g. Patch Tuesday)</label>
              </fieldset>
              {monthlyBy === 'day' ? (
                <Field field="schedule.recurrence.monthDay" label="Day of the month (1 to 28, or -1 for the last)" errors={errors}>
                  <input type="number" min={-1} max={28} value={monthDay} onChange={(e) => setMonthDay(e.target.value)} {...described('schedule.recurrence.monthDay', errors)} />
                </Field>
              ) : (
                <div className="three">
                  <Field field="schedule.recurrence.nthWeekday.ordinal" label="Which" errors={errors}>
                    <select value={ordinal} onChange={(e) => setOrdinal(e.target.value)} {...described('schedule.recurrence.nthWeekday.ordinal', errors)}>
                      {[['1', 'First'], ['2', 'Second'], ['3', 'Third'], ['4', 'Fourth'], ['-1', 'Last']].map(([v, l]) => <option key={v} value={v}>{l}</option>)}
                    </select>
                  </Field>
                  <Field field="schedule.recurrence.nthWeekday.weekDay" label="Weekday" errors={errors}>
                    <select value={nthDay} onChange={(e) => setNthDay(e.target.value)} {...described('schedule.recurrence.nthWeekday.weekDay', errors)}>
                      {WEEK_DAYS.map((d) => <option key={d} value={d}>{words(d)}</option>)}
                    </select>
                  </Field>
                  <Field field="schedule.recurrence.offsetDays" label="Days after it (-6 to 6)" errors={errors}>
                    <input type="number" min={-6} max={6} value={offsetDays} onChange={(e) => setOffsetDays(e.target.value)} {...described('schedule.recurrence.offsetDays', errors)} />
                  </Field>
                </div>
              )}
            </>
          )}
          {frequency !== 'ONCE' && (
            <Field field="schedule.endAt" label="No run after (optional)" errors={errors}>
              <input type="datetime-local" value={endAt} onChange={(e) => setEndAt(e.target.value)} {...described('schedule.endAt', errors)} />
            </Field>
          )}
          </>}
          <p className="next-run" id="next-run" role="status">{nextRunText(onDemand, forecast)}</p>
        </fieldset>

        <fieldset>
          <legend>How</legend>
          <div className="two">
            <Field field="windowMinutes" label="Maintenance window (minutes)" help="30 to 360. Updates that would not finish in it are not started." errors={errors}>
              <input type="number" min={30} max={360} step={5} value={windowMinutes} onChange={(e) => setWindowMinutes(e.target.value)} {...described('windowMinutes', errors, true)} />
            </Field>
            <Field field="rebootSetting" label="Reboot" errors={errors}>
              <select value={rebootSetting} onChange={(e) => setRebootSetting(e.target.value)} {...described('rebootSetting', errors)}>
                {Object.entries(REBOOT).map(([v, l]) => <option key={v} value={v}>{l}</option>)}
              </select>
            </Field>
          </div>
          <div className="two">
            <Field field="maxConcurrent" label="Max concurrent machines" help="Empty: all, up to 100 at a time." errors={errors}>
              <div className="with-unit">
                <input type="number" min={1} value={maxConcurrent} onChange={(e) => setMaxConcurrent(e.target.value)} {...described('maxConcurrent', errors, true)} />
                <select aria-label="Unit of max concurrent machines" value={maxConcurrentUnit} onChange={(e) => setMaxConcurrentUnit(e.target.value)}><option value="COUNT">machines</option><option value="PERCENT">% of targets</option></select>
              </div>
            </Field>
            <Field field="maxFailures" label="Max failures before stopping" help="Empty: no limit." errors={errors}>
              <div className="with-unit">
                <input type="number" min={0} value={maxFailures} onChange={(e) => setMaxFailures(e.target.value)} {...described('maxFailures', errors, true)} />
                <select aria-label="Unit of max failures" value={maxFailuresUnit} onChange={(e) => setMaxFailuresUnit(e.target.value)}><option value="COUNT">machines</option><option value="PERCENT">% of targets</option></select>
              </div>
            </Field>
          </div>
          <label className="check"><input type="checkbox" checked={runNow} onChange={(e) => setRunNow(e.target.checked)} aria-describedby={onDemand ? undefined : 'run-now-help'} /> Also run it once now</label>
          {!onDemand && <p className="help" id="run-now-help">Its schedule runs as well, at its own time (see “Next scheduled run” above). Choose “On demand only” for a deployment that runs only when started.</p>}
        </fieldset>

        <div className="actions">
          <button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Create deployment'}</button>
          <button type="button" className="secondary" disabled={busy} onClick={() => void showPreview()}>Preview</button>
          <Link to="/deployments">Cancel</Link>
        </div>
      </form>

      {preview && (
        <section aria-labelledby="preview-title" className="card">
          <h2 id="preview-title">Preview</h2>
          <p>
            {preview.onDemandOnly ? 'No scheduled run: on demand only.' : `Next scheduled run: ${preview.nextRunAt ? `${new Date(preview.nextRunAt).toLocaleString()} (${fromNow(preview.nextRunAt)})` : 'none'}; ${preview.scheduleDescription}.`}{' '}
            Window {preview.windowMinutes} minutes.
          </p>
          {preview.warnings.length > 0 && (
            <div className="notice" role="status" aria-label="Preview warnings">
              {preview.warnings.map((w, i) => <p key={i}>{w.message}</p>)}
            </div>
          )}
          <TableBox label="Preview per machine">
            <table>
              <thead><tr><th scope="col">Machine</th>{rings.length > 0 && <th scope="col">Ring</th>}<th scope="col">Would install, in order</th><th scope="col">Not selected</th><th scope="col">Likely not attempted</th><th scope="col">Reboot</th></tr></thead>
              <tbody>
                {preview.machines.map((p) => (
                  <tr key={p.machine.id}>
                    <td>{p.machine.name}</td>
                    {rings.length > 0 && <td>{p.ring ?? 'None: not updated'}</td>}
                    <td className="small">{p.toInstall.map((u) => u.name).join(', ') || '—'}</td>
                    <td className="small">{p.notSelected.map((n) => n.update.name).join(', ') || '—'}</td>
                    <td className="small">{p.predictedNotAttempted.map((u) => u.name).join(', ') || '—'}</td>
                    <td>{words(p.willReboot)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableBox>
        </section>
      )}
    </Page>
  );
}
