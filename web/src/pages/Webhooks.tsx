import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { problemsOf, type ApiProblem } from '../client';
import { CreateWebhookDocument, DeleteWebhookDocument, UpdateWebhookDocument, WebhookDeliveriesDocument, WebhooksDocument, type WebhookEventType, type WebhookRowFragment } from '../graphql.generated';
import { Badge, Loading, Page, Problems, TableBox, when, words } from '../ui';
import { formFields } from '../fields';

/** The events, in the order an operator thinks of them, with what each one means. */
const EVENTS: Array<{ value: WebhookEventType; label: string }> = [
  { value: 'RUN_STARTED', label: 'Run started' },
  { value: 'RUN_ENDED', label: 'Run ended (with its status)' },
  { value: 'RING_WAITING_FOR_APPROVAL', label: 'Ring waiting for approval' },
  { value: 'RUN_HALTED', label: 'Run halted' },
  { value: 'MACHINE_RUN_FAILED', label: 'Machine run failed' },
  { value: 'MACHINE_DISCONNECTED', label: 'Machine disconnected for more than N minutes' },
  { value: 'MACHINE_NON_COMPLIANT', label: 'Machine non-compliant for more than N days' },
];

const FIELDS = ['url', 'events', 'description', 'disconnectedMinutes', 'nonCompliantDays'] as const;
const { Field, described, idOf } = formFields((field) => `webhook-${field}`);

/**
 * Settings → Webhooks (ADMIN): subscribe a URL to events, see each subscription's signing secret
 * once, pause or delete subscriptions, and read the delivery log. docs/webhooks.md says how a
 * receiver checks a delivery.
 */
export function WebhooksPage() {
  const [{ data, error, fetching }, refetch] = useQuery({ query: WebhooksDocument });
  const [shown, setShown] = useState<string | null>(null);
  const [created, setCreated] = useState<{ url: string; secret: string } | null>(null);
  const [update, updateWebhook] = useMutation(UpdateWebhookDocument);
  const [remove, deleteWebhook] = useMutation(DeleteWebhookDocument);
  const hooks = data?.webhooks.edges.map((e) => e.node) ?? [];
  return (
    <Page title="Webhooks">
      <p className="muted">fleetpatch POSTs each event as JSON signed with HMAC-SHA256 (header Fleetpatch-Signature), retries for more than a day, and keeps a log of every delivery. How to check a signature: docs/webhooks.md.</p>
      <Problems error={error ?? update.error ?? remove.error} />
      {created && (
        <div role="status" className="card secret-once" aria-label="Signing secret">
          <h2>Signing secret for {created.url}</h2>
          <p>Copy it into the receiver now: it is not shown again.</p>
          <p><code data-testid="webhook-secret">{created.secret}</code></p>
          <button className="secondary" onClick={() => setCreated(null)}>I have stored it</button>
        </div>
      )}
      <NewWebhook onCreated={(url, secret) => { setCreated({ url, secret }); refetch({ requestPolicy: 'network-only' }); }} />
      <h2>Subscriptions</h2>
      {!data && fetching && <Loading what="webhooks" />}
      {data && hooks.length === 0 && <p className="muted">No webhook yet.</p>}
      {hooks.length > 0 && (
        <TableBox label="Webhooks">
          <table>
            <thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">State</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {hooks.map((h) => (
                <tr key={h.id}>
                  <td className="small"><span className="url">{h.url}</span>{h.description && <div className="muted">{h.description}</div>}</td>
                  <td className="small">{eventsText(h)}</td>
                  <td>{h.enabled ? 'Enabled' : 'Paused'}</td>
                  <td className="small">{when(h.createdAt)}</td>
                  <td className="row-actions">
                    <button className="secondary" aria-pressed={shown === h.id} onClick={() => setShown(shown === h.id ? null : h.id)}>Deliveries</button>
                    <button className="secondary" disabled={update.fetching} onClick={() => void updateWebhook({ id: h.id, input: { enabled: !h.enabled } })}>{h.enabled ? 'Pause' : 'Enable'}</button>
                    <button className="secondary" disabled={remove.fetching} onClick={() => {
                      if (!window.confirm(`Delete the webhook to ${h.url} and its delivery log?`)) return;
                      void deleteWebhook({ id: h.id }, { additionalTypenames: ['Webhook'] }).then(() => { if (shown === h.id) setShown(null); refetch({ requestPolicy: 'network-only' }); });
                    }}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
      <DeliveryLog webhookId={shown} url={hooks.find((h) => h.id === shown)?.url ?? null} />
    </Page>
  );
}

function eventsText(h: WebhookRowFragment): string {
  const order = (e: string) => EVENTS.findIndex((x) => x.value === e);
  return [...h.events]
    .sort((a, b) => order(a) - order(b))
    .map((e) => (e === 'MACHINE_DISCONNECTED' ? `${words(e)} (${h.disconnectedMinutes} min)` : e === 'MACHINE_NON_COMPLIANT' ? `${words(e)} (${h.nonCompliantDays} days)` : words(e)))
    .join(', ');
}

function NewWebhook({ onCreated }: { onCreated: (url: string, secret: string) => void }) {
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<WebhookEventType[]>(['RUN_ENDED']);
  const [minutes, setMinutes] = useState('30');
  const [days, setDays] = useState('7');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [others, setOthers] = useState<string[]>([]);
  const [create, createWebhook] = useMutation(CreateWebhookDocument);
  const formRef = useRef<HTMLFormElement>(null);
  const [focusFirst, setFocusFirst] = useState(0);
  useEffect(() => {
    if (focusFirst === 0) return;
    const first = FIELDS.find((f) => errors[f]);
    (first ? document.getElementById(first === 'events' ? `${idOf('events')}-0` : idOf(first)) : document.getElementById('webhook-problems'))?.focus();
  }, [focusFirst, errors]);

  function show(problems: ApiProblem[]) {
    const atFields: Record<string, string> = {};
    const rest: string[] = [];
    for (const p of problems) {
      if (p.field && (FIELDS as readonly string[]).includes(p.field)) atFields[p.field] = p.message;
      else rest.push(p.message);
    }
    setErrors(atFields);
    setOthers(rest);
    setFocusFirst((n) => n + 1);
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const number = (text: string) => (text.trim() === '' ? null : Number(text));
    const result = await createWebhook({
      input: {
        url: url.trim(),
        events,
        description: description.trim() || null,
        disconnectedMinutes: events.includes('MACHINE_DISCONNECTED') ? number(minutes) : null,
        nonCompliantDays: events.includes('MACHINE_NON_COMPLIANT') ? number(days) : null,
      },
    }, { additionalTypenames: ['Webhook'] });
    if (!result.data) return show(problemsOf(result.error));
    setErrors({});
    setOthers([]);
    setUrl('');
    setDescription('');
    onCreated(result.data.createWebhook.webhook.url, result.data.createWebhook.secret);
  };

  const toggle = (value: WebhookEventType) => setEvents((list) => (list.includes(value) ? list.filter((e) => e !== value) : [...list, value]));
  const problemCount = Object.keys(errors).length + others.length;
  return (
    <section className="card" aria-labelledby="new-webhook">
      <h2 id="new-webhook">New webhook</h2>
      <form ref={formRef} className="webhook-form" onSubmit={(e) => void submit(e)} noValidate>
        {problemCount > 0 && (
          <div id="webhook-problems" role="alert" className="alert" tabIndex={-1}>
            <p>{Object.keys(errors).length > 0 ? 'Fix the fields marked below.' : 'The webhook was not created.'}</p>
            {others.map((o, i) => <p key={i}>{o}</p>)}
          </div>
        )}
        <Field field="url" label="URL" help="http:// or https://. Private addresses need FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS on the worker." errors={errors}>
          <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} {...described('url', errors, true)} />
        </Field>
        <fieldset className={errors.events ? 'invalid' : ''} aria-describedby={errors.events ? `${idOf('events')}-error` : undefined}>
          <legend>Events</legend>
          {EVENTS.map((e, i) => (
            <label key={e.value} className="choice">
              <input type="checkbox" id={`${idOf('events')}-${i}`} checked={events.includes(e.value)} onChange={() => toggle(e.value)} /> {e.label}
            </label>
          ))}
          {errors.events && <p className="field-error" id={`${idOf('events')}-error`}>{errors.events}</p>}
        </fieldset>
        {events.includes('MACHINE_DISCONNECTED') && (
          <Field field="disconnectedMinutes" label="Disconnected for more than (minutes)" help="5 to 43,200." errors={errors}>
            <input type="number" inputMode="numeric" value={minutes} onChange={(e) => setMinutes(e.target.value)} {...described('disconnectedMinutes', errors, true)} />
          </Field>
        )}
        {events.includes('MACHINE_NON_COMPLIANT') && (
          <Field field="nonCompliantDays" label="Non-compliant for more than (days)" help="1 to 365." errors={errors}>
            <input type="number" inputMode="numeric" value={days} onChange={(e) => setDays(e.target.value)} {...described('nonCompliantDays', errors, true)} />
          </Field>
        )}
        <Field field="description" label="Description (optional)" errors={errors}>
          <input type="text" value={description} onChange={(e) => setDescription(e.target.value)} {...described('description', errors)} />
        </Field>
        <button type="submit" disabled={create.fetching}>{create.fetching ? 'Creating…' : 'Create webhook'}</button>
      </form>
    </section>
  );
}

const PAGE = 50;

/** The delivery log, newest first, a page at a time; refreshed every few seconds while shown. */
function DeliveryLog({ webhookId, url }: { webhookId: string | null; url: string | null }) {
  const [after, setAfter] = useState<string | null>(null);
  const [earlier, setEarlier] = useState<Array<string | null>>([]);
  useEffect(() => {
    setAfter(null);
    setEarlier([]);
  }, [webhookId]);
  const [{ data, error, fetching }, refetch] = useQuery({ query: WebhookDeliveriesDocument, variables: { webhookId, first: PAGE, after }, requestPolicy: 'cache-and-network' });
  useEffect(() => {
    const timer = setInterval(() => refetch({ requestPolicy: 'network-only' }), 3000);
    return () => clearInterval(timer);
  }, [refetch]);
  const log = data?.webhookDeliveries;
  return (
    <section aria-labelledby="delivery-log">
      <h2 id="delivery-log">Delivery log{url ? ` of ${url}` : ' (every webhook)'}</h2>
      <Problems error={error} />
      {!log && fetching && <Loading what="deliveries" />}
      {log && log.totalCount === 0 && <p className="muted">No delivery yet.</p>}
      {log && log.totalCount > 0 && (
        <>
          <p className="muted">{log.totalCount} deliver{log.totalCount === 1 ? 'y' : 'ies'}.</p>
          <TableBox label="Deliveries">
            <table>
              <thead><tr><th scope="col">Event</th><th scope="col">Status</th><th scope="col" className="num">Attempts</th><th scope="col">Last answer</th><th scope="col">Next attempt</th><th scope="col">Created</th></tr></thead>
              <tbody>
                {log.edges.map(({ node: d }) => (
                  <tr key={d.id}>
                    <td>{words(d.eventType)}</td>
                    <td><Badge value={d.status} /></td>
                    <td className="num">{d.attempts}</td>
                    <td className="small">{d.lastError ?? (d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : '—')}</td>
                    <td className="small">{d.status === 'PENDING' ? when(d.nextAttemptAt) : '—'}</td>
                    <td className="small">{when(d.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableBox>
          <div className="actions">
            {earlier.length > 0 && <button className="secondary" onClick={() => { setAfter(earlier.at(-1) ?? null); setEarlier((e) => e.slice(0, -1)); }}>Newer</button>}
            {log.pageInfo.hasNextPage && <button className="secondary" onClick={() => { setEarlier((e) => [...e, after]); setAfter(log.pageInfo.endCursor); }}>Older</button>}
          </div>
        </>
      )}
    </section>
  );
}
