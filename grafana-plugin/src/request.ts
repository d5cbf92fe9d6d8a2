import { Params } from './api';
import { PIQuery } from './types';

/** Template-variable interpolation: `getTemplateSrv().replace` bound to the request's scoped vars. */
export type Interpolate = (value: string, format?: string) => string;

export interface ApiRequest {
  path: string;
  params: Params;
}

export interface RangeMs {
  from: number;
  to: number;
}

/**
 * Maps one query to one API call. Each endpoint gets only the parameters it knows, since the
 * API answers 400 to unknown ones. Returns undefined when there is nothing to ask (a trace
 * whose queue ID is empty, e.g. a dashboard variable not chosen yet).
 */
export function buildRequest(q: PIQuery, range: RangeMs, interpolate: Interpolate): ApiRequest | undefined {
  const text = (v?: string) => (v ? interpolate(v).trim() || undefined : undefined);
  const frames = { format: 'frames' };
  const time = { from: range.from, to: range.to };
  switch (q.queryType ?? 'search') {
    case 'trace': {
      const queueId = text(q.queueId);
      if (!queueId) {
        return undefined;
      }
      return { path: `/api/v1/messages/${encodeURIComponent(queueId)}`, params: { ...frames, host: text(q.host) } };
    }
    case 'stats':
      return {
        path: `/api/v1/stats/${encodeURIComponent(text(q.stat) ?? 'volume')}`,
        params: {
          ...frames,
          ...time,
          domain: text(q.domain),
          host: text(q.host),
          interval: text(q.interval),
          limit: q.limit,
        },
      };
    case 'annotations':
      // plain items (ISO times), mapped to annotation events by annotations.ts
      return { path: '/api/v1/annotations', params: { ...time, domain: text(q.domain), host: text(q.host) } };
    case 'search':
    default:
      return {
        path: '/api/v1/messages',
        params: {
          ...frames,
          ...time,
          recipient: text(q.recipient),
          sender: text(q.sender),
          domain: text(q.domain),
          subject: text(q.subject),
          queue_id: text(q.queueId),
          status: statuses(q.status, interpolate),
          dsn: text(q.dsn),
          host: text(q.host),
          limit: q.limit,
        },
      };
  }
}

/** `$status` may stand for several values: csv format expands it, then split into repeated parameters. */
export function statuses(values: string[] | undefined, interpolate: Interpolate): string[] | undefined {
  const out = new Set<string>();
  for (const v of values ?? []) {
    for (const s of interpolate(v, 'csv').split(',')) {
      if (s.trim()) {
        out.add(s.trim());
      }
    }
  }
  return out.size ? [...out] : undefined;
}
