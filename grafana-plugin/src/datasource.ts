import {
  DataFrame,
  DataQueryError,
  DataQueryRequest,
  DataQueryResponse,
  DataSourceApi,
  DataSourceInstanceSettings,
  CoreApp,
  LegacyMetricFindQueryOptions,
  MetricFindValue,
  ScopedVars,
  TestDataSourceResponse,
} from '@grafana/data';
import { getTemplateSrv } from '@grafana/runtime';

import { annotationFrame, annotationSupport } from './annotations';
import { apiGet, toApiError } from './api';
import { toFrames } from './frames';
import { Interpolate, buildRequest } from './request';
import { parseVariableQuery } from './variables';
import { AnnotationItem, DEFAULT_QUERY, HealthItem, PIOptions, PIQuery, ValueItem } from './types';

export class DataSource extends DataSourceApi<PIQuery, PIOptions> {
  /** Grafana's proxy URL for this instance (`/api/datasources/proxy/uid/<uid>`). */
  private readonly baseUrl: string;
  private readonly configured: boolean;

  constructor(settings: DataSourceInstanceSettings<PIOptions>) {
    super(settings);
    this.baseUrl = settings.url ?? '';
    this.configured = Boolean(settings.jsonData?.url);
    this.annotations = annotationSupport;
  }

  getDefaultQuery(_app: CoreApp): Partial<PIQuery> {
    return DEFAULT_QUERY;
  }

  /** Skips hidden queries and traces without a queue ID rather than asking the API for nothing. */
  filterQuery(query: PIQuery): boolean {
    return !query.hide && (query.queryType !== 'trace' || Boolean(query.queueId));
  }

  async query(request: DataQueryRequest<PIQuery>): Promise<DataQueryResponse> {
    const range = { from: request.range.from.valueOf(), to: request.range.to.valueOf() };
    const interpolate = interpolator(request.scopedVars);
    // one API call per query; a failing one reports its own error and leaves the others' frames
    const results = await Promise.all(
      request.targets
        .filter((t) => !t.hide)
        .map(async (target): Promise<{ frames: DataFrame[]; error?: DataQueryError }> => {
          try {
            const req = buildRequest(target, range, interpolate);
            if (!req) {
              return { frames: [] };
            }
            const envelope = await apiGet<unknown>(this.baseUrl, req.path, req.params, `${request.requestId}_${target.refId}`);
            const frames =
              target.queryType === 'annotations'
                ? [annotationFrame(envelope.items as AnnotationItem[], target.refId)]
                : toFrames(envelope, target.refId);
            return { frames };
          } catch (err) {
            const e = toApiError(err);
            return { frames: [], error: { message: e.message, status: e.status, refId: target.refId } };
          }
        })
    );
    const errors = results.flatMap((r) => (r.error ? [r.error] : []));
    return { data: results.flatMap((r) => r.frames), ...(errors.length ? { errors } : {}) };
  }

  /** Variable query `field` or `field:prefix`, e.g. `domain` or `domain:ex`; values most frequent first. */
  async metricFindQuery(query: string, options?: LegacyMetricFindQueryOptions): Promise<MetricFindValue[]> {
    const { field, prefix } = parseVariableQuery(interpolator(options?.scopedVars)(query ?? ''));
    const range = options?.range ? { from: options.range.from.valueOf(), to: options.range.to.valueOf() } : {};
    const envelope = await apiGet<ValueItem>(this.baseUrl, `/api/v1/values/${field}`, { prefix, ...range });
    return envelope.items.map((item) => ({ text: item.value, value: item.value }));
  }

  /** "Save & test": the health endpoint needs the token too, so this checks URL and token together. */
  async testDatasource(): Promise<TestDataSourceResponse> {
    if (!this.configured) {
      return { status: 'error', message: 'Set the URL of the Postfix Insights API (e.g. http://127.0.0.1:8080).' };
    }
    try {
      const { items } = await apiGet<HealthItem>(this.baseUrl, '/api/v1/health');
      const health = items[0];
      if (health?.status !== 'ok') {
        return { status: 'error', message: `Postfix Insights API reports status "${health?.status ?? 'unknown'}"` };
      }
      const store = health.store;
      const records = store?.records !== undefined ? `; ${store.records} delivery records` : '';
      const last = store?.last_time ? `, newest ${store.last_time}` : '';
      return {
        status: 'success',
        message: `Connected to Postfix Insights${health.version ? ` ${health.version}` : ''}${records}${last}`,
      };
    } catch (err) {
      return { status: 'error', message: toApiError(err).message };
    }
  }
}

function interpolator(scopedVars?: ScopedVars): Interpolate {
  return (value, format) => getTemplateSrv().replace(value, scopedVars, format);
}
