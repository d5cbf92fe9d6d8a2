// Runs the data source against a real `postfix-insights serve` when PI_URL is set (skipped
// otherwise: `npm test` has no service). tests/test_plugin_live.py starts one and runs it so:
//   PI_URL=http://127.0.0.1:8080 PI_TOKEN=secret npx jest src/live.test.ts
// Grafana's data proxy is played by a fetch that adds the bearer token, as the route in
// plugin.json does. It checks that every query type sends only parameters the API accepts.
import { DataFrame, DataQueryResponse } from '@grafana/data';
import { from } from 'rxjs';

import { DataSource } from './datasource';
import { PROXY_URL, fakeReplace, instanceSettings, queryRequest } from './test/helpers';
import { PIQuery, STAT_NAMES } from './types';

declare const process: { env: Record<string, string | undefined> };
declare const require: (id: string) => any;
const upstream = process.env.PI_URL?.replace(/\/$/, '');
const token = process.env.PI_TOKEN ?? '';

/** GET with Node's http client (jsdom has no fetch); resolves {status, data}. */
function httpGet(url: string, headers: Record<string, string>): Promise<{ status: number; data: unknown }> {
  const http = require('http');
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res: any) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, data: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

jest.mock('./components/QueryEditor', () => ({ QueryEditor: () => null, AnnotationQueryEditor: () => null }));
jest.mock('@grafana/runtime', () => ({
  getTemplateSrv: () => ({ replace: fakeReplace }),
  getBackendSrv: () => ({
    // the data proxy: strip the proxy prefix and route name, add the token
    fetch: (options: { url: string }) =>
      from(
        httpGet(options.url.replace(`${PROXY_URL}/api`, upstream!), { Authorization: `Bearer ${token}` }).then((res) => {
          if (res.status >= 400) {
            throw res;
          }
          return { ...res, ok: true };
        })
      ),
  }),
}));

const live = upstream ? describe : describe.skip;

live('against a running API', () => {
  const ds = new DataSource(instanceSettings());
  const now = Date.now();
  const request = (targets: PIQuery[]) => queryRequest(targets, {}, { from: now - 7 * 86400000, to: now });
  const run = async (targets: PIQuery[]) => (await ds.query(request(targets))) as DataQueryResponse;

  it('Save & test succeeds', async () => {
    expect(await ds.testDatasource()).toMatchObject({ status: 'success' });
  });

  it('a search with every filter is accepted', async () => {
    const res = await run([
      { refId: 'A', queryType: 'search', domain: 'example.com', status: ['sent', 'deferred'], dsn: '2', host: 'mx1', limit: 5 },
      { refId: 'B', queryType: 'search', recipient: 'nobody@example.com', sender: 'x@example.com', subject: 'x', queueId: 'ABC' },
    ]);
    expect(res.errors).toBeUndefined();
    expect((res.data[0] as DataFrame).name).toBe('messages');
  });

  it('a trace of a searched queue ID gives five frames', async () => {
    const search = await run([{ refId: 'A', queryType: 'search', limit: 1 }]);
    const frame = search.data[0] as DataFrame;
    const queueId = frame.fields.find((f) => f.name === 'queue_id')!.values[0];
    const host = frame.fields.find((f) => f.name === 'host')!.values[0];
    const res = await run([{ refId: 'T', queryType: 'trace', queueId, host }]);
    expect(res.errors).toBeUndefined();
    expect(res.data.map((f: DataFrame) => f.name)).toEqual(['message', 'recipients', 'attempts', 'links', 'lines']);
  });

  it('every statistic is accepted with domain, host, interval and limit', async () => {
    const res = await run(
      STAT_NAMES.map((stat) => ({ refId: stat, queryType: 'stats' as const, stat, domain: 'example.com', host: 'mx1', interval: '1h', limit: 5 }))
    );
    expect(res.errors).toBeUndefined();
    expect(res.data.map((f: DataFrame) => f.refId)).toEqual([...STAT_NAMES]);
  });

  it('annotations and variable values are accepted', async () => {
    const res = await run([{ refId: 'Anno', queryType: 'annotations', domain: 'example.com', host: 'mx1' }]);
    expect(res.errors).toBeUndefined();
    expect(await ds.metricFindQuery('domain:ex')).toEqual(expect.any(Array));
  });

  it('an unknown queue ID is a readable 404', async () => {
    const res = await run([{ refId: 'T', queryType: 'trace', queueId: 'NOSUCHQUEUEID' }]);
    expect(res.errors?.[0].message).toMatch(/^Postfix Insights API error 404: no message with queue ID NOSUCHQUEUEID/);
  });
});
