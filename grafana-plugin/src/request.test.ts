import { queryString } from './api';
import { buildRequest, statuses } from './request';
import { FROM_MS, TO_MS, fakeReplace } from './test/helpers';
import { PIQuery } from './types';

const range = { from: FROM_MS, to: TO_MS };
const interpolate = (v: string, format?: string) => fakeReplace(v, undefined, format);
const build = (q: Partial<PIQuery>) => buildRequest({ refId: 'A', ...q }, range, interpolate);

describe('buildRequest', () => {
  it('search: every filter, the time range in epoch ms and format=frames', () => {
    const req = build({
      queryType: 'search',
      recipient: 'alice@example.com',
      sender: 'orders@shop.example.org',
      domain: 'example.com',
      subject: 'invoice',
      queueId: '4Bx3Kp1Zz9z',
      status: ['sent', 'bounced'],
      dsn: '5.1',
      host: 'mx1',
      limit: 50,
    });
    expect(req).toEqual({
      path: '/api/v1/messages',
      params: {
        format: 'frames',
        from: 1795852800000,
        to: 1795939200000,
        recipient: 'alice@example.com',
        sender: 'orders@shop.example.org',
        domain: 'example.com',
        subject: 'invoice',
        queue_id: '4Bx3Kp1Zz9z',
        status: ['sent', 'bounced'],
        dsn: '5.1',
        host: 'mx1',
        limit: 50,
      },
    });
  });

  it('search is the default type and leaves empty filters out of the query string', () => {
    const req = build({ domain: '', subject: '  ' });
    expect(req?.path).toBe('/api/v1/messages');
    expect(queryString(req!.params)).toBe('format=frames&from=1795852800000&to=1795939200000');
  });

  it('interpolates template variables in text fields and expands a multi-value status', () => {
    const req = build({ domain: '$domain', host: '${host}', status: ['$status', 'sent'], queueId: '$empty' });
    expect(req?.params).toMatchObject({ domain: 'example.com', host: 'mx1', status: ['bounced', 'deferred', 'sent'] });
    expect(req?.params.queue_id).toBeUndefined();
    expect(queryString(req!.params)).toContain('status=bounced&status=deferred&status=sent');
  });

  it('trace: queue ID in the path, only host and format as parameters (no time range)', () => {
    expect(build({ queryType: 'trace', queueId: '$queue', host: 'mx2', domain: 'ignored.example' })).toEqual({
      path: '/api/v1/messages/4Bx3Kp1Zz9z',
      params: { format: 'frames', host: 'mx2' },
    });
  });

  it('trace without a queue ID (or with an empty variable) asks nothing', () => {
    expect(build({ queryType: 'trace' })).toBeUndefined();
    expect(build({ queryType: 'trace', queueId: '$empty' })).toBeUndefined();
  });

  it('trace escapes the queue ID in the path', () => {
    expect(build({ queryType: 'trace', queueId: 'a/b' })?.path).toBe('/api/v1/messages/a%2Fb');
  });

  it('stats: the chosen statistic with range, domain, host, interval and limit only', () => {
    expect(
      build({ queryType: 'stats', stat: 'slow-domains', domain: '$domain', host: 'mx1', interval: '1h', limit: 5, sender: 'x@y' })
    ).toEqual({
      path: '/api/v1/stats/slow-domains',
      params: { format: 'frames', from: FROM_MS, to: TO_MS, domain: 'example.com', host: 'mx1', interval: '1h', limit: 5 },
    });
  });

  it('stats defaults to volume and interpolates $__interval from scoped vars', () => {
    const req = buildRequest({ refId: 'A', queryType: 'stats', interval: '$__interval' }, range, (v, f) =>
      fakeReplace(v, { __interval: { text: '2m', value: '2m' } }, f)
    );
    expect(req?.path).toBe('/api/v1/stats/volume');
    expect(req?.params.interval).toBe('2m');
  });

  it('annotations: plain items (no format=frames) for the range, domain and host', () => {
    expect(build({ queryType: 'annotations', domain: '$domain' })).toEqual({
      path: '/api/v1/annotations',
      params: { from: FROM_MS, to: TO_MS, domain: 'example.com', host: undefined },
    });
  });
});

describe('statuses', () => {
  it('dedupes and drops empties', () => {
    expect(statuses(['sent', ' sent ', '', '$status', '$status'], interpolate)).toEqual(['sent', 'bounced', 'deferred']);
  });
  it('is undefined for no statuses', () => {
    expect(statuses(undefined, interpolate)).toBeUndefined();
    expect(statuses(['$empty'], interpolate)).toBeUndefined();
  });
});

describe('queryString', () => {
  it('repeats array keys and skips undefined and empty values', () => {
    expect(queryString({ a: ['x', 'y z'], b: undefined, c: '', d: 0, e: 'é&' })).toBe('a=x&a=y+z&d=0&e=%C3%A9%26');
  });
});
