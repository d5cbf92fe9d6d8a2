import { FieldType } from '@grafana/data';

import { toFrames } from './frames';
import { ApiEnvelope } from './types';
import messages from './__fixtures__/messages.frames.json';
import trace from './__fixtures__/trace.frames.json';
import volume from './__fixtures__/stats-volume.frames.json';
import domains from './__fixtures__/stats-domains.frames.json';

const env = (fixture: unknown) => fixture as ApiEnvelope<unknown>;
const field = (frame: ReturnType<typeof toFrames>[number], name: string) => frame.fields.find((f) => f.name === name)!;

describe('toFrames', () => {
  it('search: one table frame, refId set, times in ms, units and trace links kept', () => {
    const frames = toFrames(env(messages), 'A');
    expect(frames).toHaveLength(1);
    const [frame] = frames;
    expect(frame.refId).toBe('A');
    expect(frame.name).toBe('messages');
    expect(frame.length).toBe(3);
    expect(frame.meta?.preferredVisualisationType).toBe('table');
    expect(field(frame, 'time').type).toBe(FieldType.time);
    expect(field(frame, 'time').values[0]).toBe(1795939200000);
    expect(field(frame, 'status').values).toEqual(['sent', 'deferred', 'bounced']);
    expect(field(frame, 'delay_seconds').config.unit).toBe('s');
    expect(field(frame, 'queue_id').config.links?.[0].url).toBe(
      '/d/postfix-trace/message-trace?var-queue_id=${__value.raw}&var-host=${__data.fields.host}&${__url_time_range}'
    );
  });

  it('a truncated answer carries a warning notice and the next cursor in meta', () => {
    const [frame] = toFrames(env(messages), 'A');
    expect(frame.meta?.notices).toEqual([expect.objectContaining({ severity: 'warning', text: expect.stringMatching(/More rows/) })]);
    expect(frame.meta?.custom).toEqual({ truncated: true, nextCursor: 'eyJ0aW1lIjoxNzk1OTM5MDgwMDAwLCJpZCI6MTAyfQ' });
  });

  it('trace: five frames, all with the refId, no notice when not truncated', () => {
    const frames = toFrames(env(trace), 'T');
    expect(frames.map((f) => f.name)).toEqual(['message', 'recipients', 'attempts', 'links', 'lines']);
    expect(frames.every((f) => f.refId === 'T')).toBe(true);
    expect(frames[0].meta?.notices).toBeUndefined();
    expect(frames[3].length).toBe(0);
    expect(field(frames[1], 'recipient').values).toEqual(['alice@example.com', 'bob@example.com']);
  });

  it('stats volume: a time series frame', () => {
    const [frame] = toFrames(env(volume), 'S');
    expect(frame.fields.map((f) => [f.name, f.type])).toEqual([
      ['time', 'time'],
      ['received', 'number'],
      ['sent', 'number'],
      ['deferred', 'number'],
      ['bounced', 'number'],
      ['expired', 'number'],
      ['rejected', 'number'],
    ]);
    expect(field(frame, 'time').values).toEqual([1795938600000, 1795938900000, 1795939200000]);
    expect(field(frame, 'received').values).toEqual([120, 98, 143]);
  });

  it('stats domains: percentunit rates, truncated without a cursor', () => {
    const [frame] = toFrames(env(domains), 'D');
    expect(field(frame, 'bounce_rate').config.unit).toBe('percentunit');
    expect(frame.meta?.custom).toEqual({ truncated: true, nextCursor: null });
  });

  it('leaves the answer untouched: converting it twice still gives one notice', () => {
    toFrames(env(messages), 'A');
    const [frame] = toFrames(env(messages), 'A');
    expect(frame.meta?.notices).toHaveLength(1);
    expect(JSON.stringify(messages)).not.toMatch(/notices/);
  });

  it('no items, no frames', () => {
    expect(toFrames({ items: [], truncated: false, next_cursor: null }, 'A')).toEqual([]);
  });

  it('plain rows (an API that ignored format=frames) still make one table', () => {
    const frames = toFrames(
      { items: [{ domain: 'example.com', records: 3 }, { domain: 'example.net', records: 1 }], truncated: false, next_cursor: null },
      'P'
    );
    expect(frames).toHaveLength(1);
    expect(frames[0].refId).toBe('P');
    expect(field(frames[0], 'domain').values).toEqual(['example.com', 'example.net']);
  });
});
