import type { StepFailureAction, StepPhase } from '../graphql.generated';
import { DEFAULT_ON_FAILURE, FAILURE_ACTIONS, HTTP_METHODS, newHeader, newStep, type HeaderDraft, type StepDraft } from '../steps';
import { deploymentIdOf, formFields } from '../fields';

const { Field, described, idOf } = formFields(deploymentIdOf);

/**
 * The deployment form's pre and post steps: an ordered list, each a script the agent runs on the
 * machine or a call the worker makes, with what its failure does (docs/steps.md).
 */
export function StepsEditor({ steps, onChange, errors }: { steps: StepDraft[]; onChange: (steps: StepDraft[]) => void; errors: Record<string, string> }) {
  const set = (i: number, change: Partial<StepDraft>) => onChange(steps.map((s, j) => (j === i ? { ...s, ...change } : s)));
  const move = (i: number, by: -1 | 1) => {
    const next = [...steps];
    [next[i], next[i + by]] = [next[i + by]!, next[i]!];
    onChange(next);
  };
  const setHeader = (i: number, j: number, change: Partial<HeaderDraft>) => set(i, { headers: steps[i]!.headers.map((h, k) => (k === j ? { ...h, ...change } : h)) });
  return (
    <fieldset className="steps" aria-describedby="steps-help">
      <legend>Steps</legend>
      <p className="help" id="steps-help">
        {steps.length === 0
          ? 'No steps. Add a PRE step to drain a machine or check it before the installs, a POST step to check it or tell another system afterwards.'
          : 'On each machine: PRE steps before the installs (calls first, then scripts), POST steps after the installs and the reboot (scripts first, then calls), each phase in this order. Scripts run on the machine as root; calls are made by the worker.'}
      </p>
      {errors.steps && <p className="field-error" id={`${idOf('steps')}-error`} tabIndex={-1}>{errors.steps}</p>}
      <ol className="step-list">
        {steps.map((step, i) => {
          const at = `steps[${i}]`;
          const n = i + 1;
          const http = `${at}.http`;
          const script = `${at}.script`;
          return (
            <li key={step.key} className="step card" data-step={n}>
              <fieldset>
                <legend>Step {n}{step.name.trim() && step.name.trim() !== `Step ${n}` ? `: ${step.name.trim()}` : ''}</legend>
                <div className="ring-tools">
                  <button type="button" className="secondary small" onClick={() => move(i, -1)} disabled={i === 0} aria-label={`Move step ${n} up`}>↑</button>
                  <button type="button" className="secondary small" onClick={() => move(i, 1)} disabled={i === steps.length - 1} aria-label={`Move step ${n} down`}>↓</button>
                  <button type="button" className="secondary small" onClick={() => onChange(steps.filter((_, j) => j !== i))} aria-label={`Remove step ${n}`}>Remove</button>
                </div>
                <div className="three">
                  <Field field={`${at}.name`} label={`Step ${n} name`} errors={errors}>
                    <input type="text" value={step.name} onChange={(e) => set(i, { name: e.target.value })} {...described(`${at}.name`, errors)} />
                  </Field>
                  <Field field={`${at}.phase`} label={`Step ${n} phase`} errors={errors}>
                    <select value={step.phase} onChange={(e) => { const phase = e.target.value as StepPhase; set(i, { phase, onFailure: phase === 'POST' && step.onFailure === 'SKIP_INSTALLS' ? '' : step.onFailure }); }} {...described(`${at}.phase`, errors)}>
                      <option value="PRE">PRE: before the installs</option>
                      <option value="POST">POST: after the installs</option>
                    </select>
                  </Field>
                  <Field field={`${at}.onFailure`} label={`Step ${n} on failure`} errors={errors}>
                    <select value={step.onFailure} onChange={(e) => set(i, { onFailure: e.target.value as StepFailureAction | '' })} {...described(`${at}.onFailure`, errors)}>
                      <option value="">Default: {FAILURE_ACTIONS[DEFAULT_ON_FAILURE[step.phase]].toLowerCase()}</option>
                      {(Object.keys(FAILURE_ACTIONS) as StepFailureAction[]).filter((a) => step.phase === 'PRE' || a !== 'SKIP_INSTALLS').map((a) => <option key={a} value={a}>{FAILURE_ACTIONS[a]}</option>)}
                    </select>
                  </Field>
                </div>
                <fieldset className={`inline-choices${errors[at] ? ' invalid' : ''}`} aria-describedby={errors[at] ? `${idOf(at)}-error` : undefined}>
                  <legend>Step {n} runs</legend>
                  <label><input type="radio" name={`step-${step.key}-kind`} id={idOf(at)} checked={step.kind === 'script'} onChange={() => set(i, { kind: 'script' })} /> A script on the machine</label>
                  <label><input type="radio" name={`step-${step.key}-kind`} checked={step.kind === 'http'} onChange={() => set(i, { kind: 'http' })} /> An HTTP call from the server</label>
                  {errors[at] && <p className="field-error" id={`${idOf(at)}-error`}>{errors[at]}</p>}
                </fieldset>
                {step.kind === 'script' ? (
                  <>
                    <fieldset className="inline-choices">
                      <legend>Step {n} script</legend>
                      <label><input type="radio" name={`step-${step.key}-source`} checked={step.source === 'inline'} onChange={() => set(i, { source: 'inline' })} /> Written here</label>
                      <label><input type="radio" name={`step-${step.key}-source`} checked={step.source === 'path'} onChange={() => set(i, { source: 'path' })} /> A file on the machine</label>
                    </fieldset>
                    {step.source === 'inline' ? (
                      <Field field={`${script}.inline`} label={`Step ${n} script text`} help="At most 64 KiB. Exit code 0 is success." errors={errors}>
                        <textarea rows={4} className="code" value={step.inline} onChange={(e) => set(i, { inline: e.target.value })} {...described(`${script}.inline`, errors, true)} />
                      </Field>
                    ) : (
                      <Field field={`${script}.path`} label={`Step ${n} script path`} help="Absolute, e.g. /usr/local/bin/drain.sh." errors={errors}>
                        <input type="text" value={step.path} onChange={(e) => set(i, { path: e.target.value })} {...described(`${script}.path`, errors, true)} />
                      </Field>
                    )}
                    <div className="two">
                      <Field field={`${script}.interpreter`} label={`Step ${n} interpreter`} help="A program without arguments. Empty: /bin/sh." errors={errors}>
                        <input type="text" value={step.interpreter} onChange={(e) => set(i, { interpreter: e.target.value })} {...described(`${script}.interpreter`, errors, true)} />
                      </Field>
                      <Field field={`${script}.timeoutSeconds`} label={`Step ${n} script timeout (seconds)`} help="Empty: 300, or the window if shorter." errors={errors}>
                        <input type="number" min={1} value={step.scriptTimeout} onChange={(e) => set(i, { scriptTimeout: e.target.value })} {...described(`${script}.timeoutSeconds`, errors, true)} />
                      </Field>
                    </div>
                  </>
                ) : (
                  <>
                    <div className="two">
                      <Field field={`${http}.method`} label={`Step ${n} method`} errors={errors}>
                        <select value={step.method} onChange={(e) => set(i, { method: e.target.value })} {...described(`${http}.method`, errors)}>
                          {HTTP_METHODS.map((m) => <option key={m} value={m}>{m}</option>)}
                        </select>
                      </Field>
                      <Field field={`${http}.url`} label={`Step ${n} URL`} help="http or https; the run’s and the machine’s context go in the JSON body." errors={errors}>
                        <input type="url" value={step.url} onChange={(e) => set(i, { url: e.target.value })} {...described(`${http}.url`, errors, true)} />
                      </Field>
                    </div>
                    <fieldset className={`step-headers${errors[`${http}.headers`] ? ' invalid' : ''}`}>
                      <legend>Step {n} headers</legend>
                      {step.headers.map((h, j) => {
                        const hf = `${http}.headers[${j}]`;
                        return (
                          <div key={h.key} className="header-row">
                            <Field field={`${hf}.name`} label={`Step ${n} header ${j + 1} name`} errors={errors}>
                              <input type="text" value={h.name} onChange={(e) => setHeader(i, j, { name: e.target.value })} {...described(`${hf}.name`, errors)} />
                            </Field>
                            <div className="field">
                              <label htmlFor={`step-${step.key}-header-${h.key}-from`}>Step {n} header {j + 1} from</label>
                              <select id={`step-${step.key}-header-${h.key}-from`} value={h.from} onChange={(e) => setHeader(i, j, { from: e.target.value as HeaderDraft['from'] })}>
                                <option value="value">A value</option>
                                <option value="secret">A server-side secret (its name)</option>
                              </select>
                            </div>
                            <Field field={hf} label={h.from === 'secret' ? `Step ${n} header ${j + 1} secret name` : `Step ${n} header ${j + 1} value`} help={h.from === 'secret' ? 'The NAME of FLEETPATCH_STEP_SECRET_<NAME> on the server, never the secret itself.' : 'Stored and shown as typed.'} errors={errors}>
                              <input type="text" value={h.text} autoComplete="off" onChange={(e) => setHeader(i, j, { text: e.target.value })} {...described(hf, errors, true)} />
                            </Field>
                            <button type="button" className="secondary small" onClick={() => set(i, { headers: step.headers.filter((_, k) => k !== j) })} aria-label={`Remove step ${n} header ${j + 1}`}>Remove</button>
                          </div>
                        );
                      })}
                      <button type="button" className="secondary small" id={idOf(`${http}.headers`)} onClick={() => set(i, { headers: [...step.headers, newHeader()] })}>Add header to step {n}</button>
                      {errors[`${http}.headers`] && <p className="field-error">{errors[`${http}.headers`]}</p>}
                    </fieldset>
                    <Field field={`${http}.body`} label={`Step ${n} JSON body (optional)`} help="A JSON object, sent as data beside the context." errors={errors}>
                      <textarea rows={3} className="code" value={step.body} onChange={(e) => set(i, { body: e.target.value })} {...described(`${http}.body`, errors, true)} />
                    </Field>
                    <div className="three">
                      <Field field={`${http}.expectedStatus`} label={`Step ${n} expected statuses`} help="Comma-separated. Empty: any 2xx." errors={errors}>
                        <input type="text" value={step.expectedStatus} onChange={(e) => set(i, { expectedStatus: e.target.value })} {...described(`${http}.expectedStatus`, errors, true)} />
                      </Field>
                      <Field field={`${http}.timeoutSeconds`} label={`Step ${n} call timeout (seconds)`} help="Per attempt. Empty: 30." errors={errors}>
                        <input type="number" min={1} value={step.httpTimeout} onChange={(e) => set(i, { httpTimeout: e.target.value })} {...described(`${http}.timeoutSeconds`, errors, true)} />
                      </Field>
                      <Field field={`${http}.retries`} label={`Step ${n} retries`} help="0 to 10. Empty: 0." errors={errors}>
                        <input type="number" min={0} max={10} value={step.retries} onChange={(e) => set(i, { retries: e.target.value })} {...described(`${http}.retries`, errors, true)} />
                      </Field>
                    </div>
                  </>
                )}
              </fieldset>
            </li>
          );
        })}
      </ol>
      <button type="button" className="secondary" onClick={() => onChange([...steps, newStep(steps.length)])}>Add step</button>
    </fieldset>
  );
}
