// Test doubles for what Grafana provides at run time: the backend service (fetch through the
// data proxy) and the template service (dashboard variables).
import { DataQueryRequest, DataSourceInstanceSettings, ScopedVars, dateTime } from '@grafana/data';
import { Observable, of, throwError } from 'rxjs';

import { PIOptions, PIQuery } from '../types';

export const PROXY_URL = '/api/datasources/proxy/uid/pi-test';
export const FROM_MS = 1795852800000; // 2026-11-28T08:00:00Z
export const TO_MS = 1795939200000; // 2026-11-29T08:00:00Z

/** Dashboard variables the fake template service knows; arrays are multi-value variables. */
export const VARIABLES: Record<string, string | string[]> = {
  domain: 'example.com',
  host: 'mx1',
  queue: '4Bx3Kp1Zz9z',
  status: ['bounced', 'deferred'],
  empty: '',
};

/** Enough of TemplateSrv.replace: `$name` / `${name}`, scoped vars first, csv or glob for multi-values. */
export function fakeReplace(value: string, scopedVars?: ScopedVars, format?: string): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (match, braced, bare) => {
    const name = braced ?? bare;
    const v = scopedVars?.[name]?.value ?? VARIABLES[name];
    if (v === undefined) {
      return match;
    }
    if (Array.isArray(v)) {
      return format === 'csv' ? v.join(',') : `{${v.join(',')}}`;
    }
    return String(v);
  });
}

export interface Answer {
  status?: number;
  body: unknown;
}

/** A fetch that records each request and answers from a route table: path (without query) -> answer. */
export function fakeFetch(routes: Record<string, Answer>) {
  const calls: Array<{ url: string; method?: string; showErrorAlert?: boolean }> = [];
  const fetch = jest.fn((options: { url: string; method?: string; showErrorAlert?: boolean }) => {
    calls.push(options);
    const path = options.url.split('?')[0];
    const answer = routes[path];
    if (!answer) {
      return throwError(() => ({ status: 502, statusText: 'Bad Gateway', data: { message: 'Bad Gateway' } }));
    }
    const status = answer.status ?? 200;
    if (status >= 400) {
      return throwError(() => ({ status, statusText: 'error', data: answer.body }));
    }
    return of({ status, ok: true, data: answer.body }) as Observable<unknown>;
  });
  return { fetch, calls };
}

/** The query part of a recorded URL as sorted [key, value] pairs (repeated keys kept). */
export function paramsOf(url: string): Array<[string, string]> {
  return [...new URLSearchParams(url.split('?')[1] ?? '').entries()].sort();
}

export function instanceSettings(jsonData: PIOptions = { url: 'http://127.0.0.1:8080' }) {
  return {
    id: 1,
    uid: 'pi-test',
    type: 'postfixinsights-messages-datasource',
    name: 'Postfix Insights',
    url: PROXY_URL,
    access: 'proxy',
    jsonData,
    meta: {},
    readOnly: false,
  } as unknown as DataSourceInstanceSettings<PIOptions>;
}

export function queryRequest(
  targets: PIQuery[],
  scopedVars: ScopedVars = {},
  rangeMs: { from: number; to: number } = { from: FROM_MS, to: TO_MS }
): DataQueryRequest<PIQuery> {
  const from = dateTime(rangeMs.from);
  const to = dateTime(rangeMs.to);
  return {
    requestId: 'Q1',
    interval: '5m',
    intervalMs: 300000,
    range: { from, to, raw: { from, to } },
    scopedVars,
    targets,
    timezone: 'utc',
    app: 'dashboard',
    startTime: 0,
  } as DataQueryRequest<PIQuery>;
}

interface FrameFixture {
  items: Array<{
    schema: { name: string; fields: Array<{ name: string; type: string; config: Record<string, unknown> }> };
    data: { values: unknown[][] };
  }>;
  truncated: boolean;
  next_cursor: string | null;
}

/** A recorded frames answer, typed for tests that read expectations out of it. */
export function frameFixture(json: unknown): FrameFixture {
  return json as FrameFixture;
}

/** One column of a recorded frame, by frame index and field name. */
export function fixtureColumn(json: unknown, frame: number, field: string): unknown[] {
  const item = frameFixture(json).items[frame];
  const i = item.schema.fields.findIndex((f) => f.name === field);
  if (i < 0) {
    throw new Error(`fixture frame ${item.schema.name} has no field ${field}`);
  }
  return item.data.values[i];
}
