import { DataQuery } from '@grafana/schema';
import { DataSourceJsonData } from '@grafana/data';

/** What a panel asks for. `annotations` is used only by annotation queries, never offered in the panel editor. */
export type QueryType = 'search' | 'trace' | 'stats' | 'annotations';

/** `GET /api/v1/stats/{name}` names (docs/api.md). */
export const STAT_NAMES = [
  'volume',
  'rates',
  'sla',
  'domains',
  'slow-domains',
  'dsn',
  'rejects',
  'tls-coverage',
  'dkim',
  'heatmap',
  'top-senders',
  'top-recipients',
] as const;
export type StatName = (typeof STAT_NAMES)[number];

/** Delivery statuses the search endpoint filters on. */
export const STATUSES = ['sent', 'deferred', 'bounced', 'expired', 'rejected', 'pending', 'held', 'discarded'] as const;

/** Fields `GET /api/v1/values/{field}` knows: the template-variable sources. */
export const VALUE_FIELDS = ['domain', 'sender_domain', 'host', 'status', 'dsn', 'relay', 'sender', 'recipient'] as const;

/**
 * The query model stored in dashboards. The dashboards in dashboards/ write these exact keys,
 * so renaming one breaks them.
 */
export interface PIQuery extends DataQuery {
  queryType?: QueryType;
  recipient?: string;
  sender?: string;
  domain?: string;
  subject?: string;
  queueId?: string;
  status?: string[];
  dsn?: string;
  host?: string;
  limit?: number;
  stat?: StatName;
  interval?: string;
}

export const DEFAULT_QUERY: Partial<PIQuery> = { queryType: 'search' };

/** Saved in jsonData: visible to every Grafana user who can read the data source. */
export interface PIOptions extends DataSourceJsonData {
  /** Base URL of `postfix-insights serve`, used by the data-proxy route in plugin.json. */
  url?: string;
}

/** Saved encrypted; only the data proxy sees it. */
export interface PISecureJsonData {
  token?: string;
}

/** Every successful API answer (docs/api.md, "Success shape"). */
export interface ApiEnvelope<T> {
  items: T[];
  truncated: boolean;
  next_cursor: string | null;
  meta?: Record<string, unknown>;
}

/** Every API error body (docs/api.md, "Error shape"). */
export interface ApiErrorBody {
  error: { status: number; message: string; parameter?: string | null };
}

export interface ValueItem {
  value: string;
  count: number;
}

export interface AnnotationItem {
  time: string;
  time_end?: string | null;
  title: string;
  text: string;
  tags: string[];
  domain?: string;
  kind?: string;
  rate?: number;
  records?: number;
}

export interface HealthItem {
  status: string;
  version?: string;
  store?: { records?: number; last_time?: string | null };
}
