import { VALUE_FIELDS } from './types';

export interface VariableQuery {
  field: (typeof VALUE_FIELDS)[number];
  prefix?: string;
}

/** Parses a template-variable query: `domain` (all values) or `domain:ex` (values starting with "ex"). */
export function parseVariableQuery(query: string): VariableQuery {
  const text = query.trim();
  const colon = text.indexOf(':');
  const field = (colon < 0 ? text : text.slice(0, colon)).trim();
  const prefix = colon < 0 ? undefined : text.slice(colon + 1).trim() || undefined;
  if (!(VALUE_FIELDS as readonly string[]).includes(field)) {
    throw new Error(`Unknown variable query "${text}": use FIELD or FIELD:PREFIX, FIELD one of ${VALUE_FIELDS.join(', ')}`);
  }
  return { field: field as VariableQuery['field'], prefix };
}
