import type { ReactNode } from 'react';

/** How a form names its controls' element ids from the API's field names (`schedule.startAt`, `rings[0].name`). */
export type IdOf = (field: string) => string;

/** The deployment form's ids (its rings and steps editors share them): dots become dashes. */
export const deploymentIdOf: IdOf = (field) => `f-${field.replace(/\./g, '-')}`;

/**
 * A form's labelled fields: `Field` draws a control's label, the control, its help and the API's error
 * for its field under it; `described` gives the control the id and aria attributes that tie it to
 * that help and error. Every console form builds its fields here, so they look and read alike.
 */
export function formFields(idOf: IdOf) {
  function Field({ field, label, help, errors, children }: { field: string; label: string; help?: string; errors: Record<string, string>; children: ReactNode }) {
    return (
      <div className={`field${errors[field] ? ' invalid' : ''}`}>
        <label htmlFor={idOf(field)}>{label}</label>
        {children}
        {help && <p className="help" id={`${idOf(field)}-help`}>{help}</p>}
        {errors[field] && <p className="field-error" id={`${idOf(field)}-error`}>{errors[field]}</p>}
      </div>
    );
  }
  const described = (field: string, errors: Record<string, string>, help = false) => ({
    id: idOf(field),
    'aria-invalid': errors[field] ? true : undefined,
    'aria-describedby': [help ? `${idOf(field)}-help` : '', errors[field] ? `${idOf(field)}-error` : ''].filter(Boolean).join(' ') || undefined,
  });
  return { Field, described, idOf };
}
