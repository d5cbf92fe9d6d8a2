import React from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineFieldRow, Input, MultiSelect, RadioButtonGroup, Select } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { PIOptions, PIQuery, QueryType, STATUSES, STAT_NAMES, StatName } from '../types';

type Props = QueryEditorProps<DataSource, PIQuery, PIOptions>;

type TextKey = 'recipient' | 'sender' | 'domain' | 'subject' | 'queueId' | 'dsn' | 'host' | 'interval';
type FieldKey = TextKey | 'status' | 'limit' | 'stat';

const TEXT_FIELDS: Record<TextKey, { label: string; placeholder: string; tooltip: string }> = {
  recipient: { label: 'Recipient', placeholder: 'user@example.com', tooltip: 'Exact address; also matches the original recipient' },
  sender: { label: 'Sender', placeholder: 'sender@example.org', tooltip: 'Exact envelope sender' },
  domain: { label: 'Domain', placeholder: 'example.com', tooltip: 'Recipient domain' },
  subject: { label: 'Subject', placeholder: 'invoice', tooltip: 'Case-insensitive substring of the subject' },
  queueId: { label: 'Queue ID', placeholder: '4Bx3Kp1Zz9z', tooltip: 'Postfix queue ID' },
  dsn: { label: 'DSN', placeholder: '5.1.1 or 5.1 or 5', tooltip: 'Exact DSN or a prefix' },
  host: { label: 'Host', placeholder: 'mx1', tooltip: 'Mail server that logged the message' },
  interval: { label: 'Interval', placeholder: 'auto', tooltip: 'Bucket width of time series, e.g. 5m, 1h or $__interval' },
};

/** Which inputs each query type shows: only the parameters its endpoint accepts. */
export const FIELDS_BY_TYPE: Record<QueryType, FieldKey[]> = {
  search: ['recipient', 'sender', 'domain', 'subject', 'queueId', 'status', 'dsn', 'host', 'limit'],
  trace: ['queueId', 'host'],
  stats: ['stat', 'domain', 'host', 'interval', 'limit'],
  annotations: ['domain', 'host'],
};

const TYPE_OPTIONS: Array<SelectableValue<QueryType>> = [
  { label: 'Message search', value: 'search' },
  { label: 'Message trace', value: 'trace' },
  { label: 'Statistics', value: 'stats' },
];
const STAT_OPTIONS = STAT_NAMES.map((s) => ({ label: s, value: s }));
const STATUS_OPTIONS = STATUSES.map((s) => ({ label: s, value: s }));
const LABEL_WIDTH = 14;

export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const queryType: QueryType = query.queryType ?? 'search';
  const annotation = queryType === 'annotations';
  const update = (patch: Partial<PIQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };

  const field = (key: FieldKey) => {
    const id = `pi-${query.refId}-${key}`;
    switch (key) {
      case 'stat':
        return (
          <InlineField key={key} label="Statistic" labelWidth={LABEL_WIDTH} htmlFor={id}>
            <Select<StatName>
              inputId={id}
              width={24}
              options={STAT_OPTIONS}
              value={query.stat ?? 'volume'}
              onChange={(v) => update({ stat: v.value }, true)}
            />
          </InlineField>
        );
      case 'status':
        return (
          <InlineField key={key} label="Status" labelWidth={LABEL_WIDTH} htmlFor={id} tooltip="Any of these; $variables allowed">
            <MultiSelect<string>
              inputId={id}
              width={40}
              allowCustomValue
              options={STATUS_OPTIONS}
              value={query.status ?? []}
              onChange={(vs) => {
                const status = vs.map((v) => v.value).filter((v): v is string => Boolean(v));
                update({ status: status.length ? status : undefined }, true);
              }}
            />
          </InlineField>
        );
      case 'limit':
        return (
          <InlineField key={key} label="Limit" labelWidth={LABEL_WIDTH} htmlFor={id} tooltip="Rows per query (API default 100)">
            <Input
              id={id}
              type="number"
              min={1}
              width={12}
              value={query.limit ?? ''}
              onChange={(e) => {
                const n = parseInt(e.currentTarget.value, 10);
                update({ limit: Number.isFinite(n) && n > 0 ? n : undefined });
              }}
              onBlur={onRunQuery}
            />
          </InlineField>
        );
      default: {
        const spec = TEXT_FIELDS[key];
        return (
          <InlineField key={key} label={spec.label} labelWidth={LABEL_WIDTH} htmlFor={id} tooltip={spec.tooltip}>
            <Input
              id={id}
              width={30}
              placeholder={spec.placeholder}
              value={query[key] ?? ''}
              onChange={(e) => update({ [key]: e.currentTarget.value || undefined })}
              onBlur={onRunQuery}
            />
          </InlineField>
        );
      }
    }
  };

  return (
    <>
      {!annotation && (
        <InlineFieldRow>
          <InlineField label="Query type" labelWidth={LABEL_WIDTH}>
            <RadioButtonGroup<QueryType>
              options={TYPE_OPTIONS}
              value={queryType}
              onChange={(v) => update({ queryType: v }, true)}
            />
          </InlineField>
        </InlineFieldRow>
      )}
      <InlineFieldRow>{FIELDS_BY_TYPE[queryType].map(field)}</InlineFieldRow>
    </>
  );
}

/** The annotation editor: the same inputs, pinned to queryType `annotations` (domain and host only). */
export function AnnotationQueryEditor(props: Props) {
  const query: PIQuery = { ...props.query, queryType: 'annotations' };
  return <QueryEditor {...props} query={query} onChange={(q) => props.onChange({ ...q, queryType: 'annotations' })} />;
}
