import { DataFrame, DataQueryResponse } from '@grafana/data';
import { lastValueFrom } from 'rxjs';

import { DataSource } from './datasource';
import { FROM_MS, PROXY_URL, TO_MS, fakeFetch, fakeReplace, instanceSettings, paramsOf, queryRequest } from './test/helpers';
import { PIQuery } from './types';
import annotations from './__fixtures__/annotations.json';
import error400 from './__fixtures__/error-400.json';
import error401 from './__fixtures__/error-401.json';
import error404 from './__fixtures__/error-404.json';
import health from './__fixtures__/health.json';
import messages from './__fixtures__/messages.frames.json';
import trace from './__fixtures__/trace.frames.json';
import volume from './__fixtures__/stats-volume.frames.json';
import values from './__fixtures__/values-domain.json';

let mockBackend = fakeFetch({});
jest.mock('@grafana/runtime', () => ({
  getBackendSrv: () => mockBackend,
  getTemplateSrv: () => ({ replace: fakeReplace }),
}));

const API = `${PROXY_URL}/api/api/v1`;
const ROUTES = {
  [`${API}/messages`]: { body: messages },
  [`${API}/messages/4Bx3Kp1Zz9z`]: { body: trace },
  [`${API}/messages/NOSUCHQUEUEID`]: { status: 404, body: error404 },
  [`${API}/stats/volume`]: { body: volume },
  [`${API}/values/domain`]: { body: values },
  [`${API}/annotations`]: { body: annotations },
  [`${API}/health`]: { body: health },
};

beforeEach(() => {
  mockBackend = fakeFetch(ROUTES);
});

const run = (targets: PIQuery[], scopedVars = {}) =>
  new DataSource(instanceSettings()).query(queryRequest(targets, scopedVars)) as Promise<DataQueryResponse>;

describe('query', () => {
  it('search: one call with the interpolated filters, repeated statuses and the range in ms', async () => {
    const res = await run([{ refId: 'A', queryType: 'search', domain: '$domain', status: ['$status'], limit: 3 }]);
    expect(mockBackend.calls).toHaveLength(1);
    expect(mockBackend.calls[0].url.split('?')[0]).toBe(`${API}/messages`);
    expect(paramsOf(mockBackend.calls[0].url)).toEqual([
      ['domain', 'example.com'],
      ['format', 'frames'],
      ['from', String(FROM_MS)],
      ['limit', '3'],
      ['status', 'bounced'],
      ['status', 'deferred'],
      ['to', String(TO_MS)],
    ]);
    expect(res.errors).toBeUndefined();
    expect(res.data).toHaveLength(1);
    expect((res.data[0] as DataFrame).refId).toBe('A');
    expect((res.data[0] as DataFrame).meta?.custom?.truncated).toBe(true);
  });

  it('trace: the queue-ID path, frames tagged with the refId', async () => {
    const res = await run([{ refId: 'T', queryType: 'trace', queueId: '$queue', host: '$host' }]);
    expect(mockBackend.calls[0].url).toBe(`${API}/messages/4Bx3Kp1Zz9z?format=frames&host=mx1`);
    expect(res.data.map((f: DataFrame) => [f.name, f.refId])).toEqual([
      ['message', 'T'],
      ['recipients', 'T'],
      ['attempts', 'T'],
      ['links', 'T'],
      ['lines', 'T'],
    ]);
  });

  it('stats: the statistic path with interval from scoped vars', async () => {
    const res = await run([{ refId: 'S', queryType: 'stats', stat: 'volume', interval: '$__interval' }], {
      __interval: { text: '5m', value: '5m' },
    });
    expect(mockBackend.calls[0].url).toBe(`${API}/stats/volume?format=frames&from=${FROM_MS}&to=${TO_MS}&interval=5m`);
    expect((res.data[0] as DataFrame).fields[0].type).toBe('time');
  });

  it('several queries: one call each; a failing one reports its error by refId, the others keep their frames', async () => {
    const res = await run([
      { refId: 'A', queryType: 'search' },
      { refId: 'B', queryType: 'trace', queueId: 'NOSUCHQUEUEID' },
      { refId: 'C', queryType: 'stats', stat: 'volume', hide: true },
    ]);
    expect(mockBackend.calls).toHaveLength(2);
    expect(res.data.map((f: DataFrame) => f.refId)).toEqual(['A']);
    expect(res.errors).toEqual([
      { refId: 'B', status: 404, message: `Postfix Insights API error 404: ${error404.error.message} (parameter "queue_id")` },
    ]);
  });

  it('a 400 names the parameter in the query error', async () => {
    mockBackend = fakeFetch({ [`${API}/messages`]: { status: 400, body: error400 } });
    const res = await run([{ refId: 'A', queryType: 'search' }]);
    expect(res.data).toEqual([]);
    expect(res.errors?.[0]).toEqual({ refId: 'A', status: 400, message: `Postfix Insights API error 400: ${error400.error.message}` });
    expect(res.errors?.[0].message).toMatch(/from: not a time: 'yesterday'/);
  });

  it('a trace whose queue-ID variable is empty asks nothing and returns no data', async () => {
    const res = await run([{ refId: 'T', queryType: 'trace', queueId: '$empty' }]);
    expect(mockBackend.calls).toHaveLength(0);
    expect(res).toEqual({ data: [] });
  });
});

describe('filterQuery', () => {
  const ds = new DataSource(instanceSettings());
  it('skips hidden queries and traces without a queue ID', () => {
    expect(ds.filterQuery({ refId: 'A', queryType: 'search' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', queryType: 'search', hide: true })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'trace' })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'trace', queueId: '$queue' })).toBe(true);
  });
  it('a new query is a message search', () => {
    expect(ds.getDefaultQuery('dashboard' as never)).toEqual({ queryType: 'search' });
  });
});

describe('metricFindQuery', () => {
  it('"domain:ex" asks the values endpoint with the prefix and the range, and returns {text, value}', async () => {
    const ds = new DataSource(instanceSettings());
    const range = queryRequest([]).range;
    const found = await ds.metricFindQuery('domain:ex', { range });
    expect(mockBackend.calls[0].url).toBe(`${API}/values/domain?prefix=ex&from=${FROM_MS}&to=${TO_MS}`);
    expect(found.length).toBeGreaterThan(0);
    expect(found).toEqual(values.items.map((i) => ({ text: i.value, value: i.value })));
  });

  it('a bare field name has no prefix; variables in the query are interpolated', async () => {
    const ds = new DataSource(instanceSettings());
    await ds.metricFindQuery('domain');
    await ds.metricFindQuery('domain:$domain');
    expect(mockBackend.calls.map((c) => c.url)).toEqual([`${API}/values/domain`, `${API}/values/domain?prefix=example.com`]);
  });

  it('an unknown field fails before any request', async () => {
    const ds = new DataSource(instanceSettings());
    await expect(ds.metricFindQuery('colour:red')).rejects.toThrow(/Unknown variable query "colour:red"/);
    expect(mockBackend.calls).toHaveLength(0);
  });
});

describe('annotations', () => {
  it('annotation queries run through query() against /annotations and become events (regions where time_end is set)', async () => {
    const ds = new DataSource(instanceSettings());
    const support = ds.annotations!;
    const query = support.prepareQuery!({ name: 'Incidents', enable: true, iconColor: 'red', target: { refId: 'Anno', domain: '$domain' } } as never);
    expect(query).toEqual({ refId: 'Anno', queryType: 'annotations', domain: '$domain', host: undefined });

    const res = (await ds.query(queryRequest([query!]))) as DataQueryResponse;
    expect(mockBackend.calls[0].url).toBe(`${API}/annotations?from=${FROM_MS}&to=${TO_MS}&domain=example.com`);
    const events = await lastValueFrom(support.processEvents!({} as never, res.data));
    expect(events).toEqual(
      annotations.items.map((i) => ({
        time: Date.parse(i.time),
        timeEnd: Date.parse(i.time_end),
        isRegion: true,
        title: i.title,
        text: i.text,
        tags: i.tags,
      }))
    );
    expect(events?.[0]).toMatchObject({ time: Date.parse('2026-11-29T03:00:00Z'), tags: ['postfix', 'bounce', 'example.net'] });
  });

  it('the annotation frame uses the field names Grafana maps to events, times in ms', async () => {
    const ds = new DataSource(instanceSettings());
    const res = (await ds.query(queryRequest([{ refId: 'Anno', queryType: 'annotations' }]))) as DataQueryResponse;
    const frame = res.data[0] as DataFrame;
    expect(frame.refId).toBe('Anno');
    expect(frame.fields.map((f) => [f.name, f.type])).toEqual([
      ['time', 'time'],
      ['timeEnd', 'time'],
      ['title', 'string'],
      ['text', 'string'],
      ['tags', 'other'],
    ]);
    expect(frame.fields[0].values).toEqual(annotations.items.map((i) => Date.parse(i.time)));
    expect(frame.fields[1].values).toEqual(annotations.items.map((i) => Date.parse(i.time_end)));
  });
});

describe('testDatasource', () => {
  it('reports success with the version and store size from /health', async () => {
    const result = await new DataSource(instanceSettings()).testDatasource();
    expect(mockBackend.calls[0].url).toBe(`${API}/health`);
    const { version, store } = health.items[0];
    expect(result).toEqual({
      status: 'success',
      message: `Connected to Postfix Insights ${version}; ${store.records} delivery records, newest ${store.last_time}`,
    });
  });

  it("reports the API's error message (e.g. a wrong token)", async () => {
    mockBackend = fakeFetch({ [`${API}/health`]: { status: 401, body: error401 } });
    expect(await new DataSource(instanceSettings()).testDatasource()).toEqual({
      status: 'error',
      message: `Postfix Insights API error 401: ${error401.error.message}`,
    });
  });

  it('reports an unhealthy status', async () => {
    mockBackend = fakeFetch({ [`${API}/health`]: { body: { items: [{ status: 'degraded' }], truncated: false, next_cursor: null } } });
    expect(await new DataSource(instanceSettings()).testDatasource()).toEqual({
      status: 'error',
      message: 'Postfix Insights API reports status "degraded"',
    });
  });

  it('asks for the URL when none is set, without a request', async () => {
    const result = await new DataSource(instanceSettings({})).testDatasource();
    expect(result.status).toBe('error');
    expect(result.message).toMatch(/Set the URL/);
    expect(mockBackend.calls).toHaveLength(0);
  });
});
