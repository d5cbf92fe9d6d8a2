import { FieldType } from '@grafana/data';

import { toFrames } from './frames';
import { fixtureColumn, frameFixture } from './test/helpers';
import { ApiEnvelope } from './types';
import messages from './__fixtures__/messages.frames.json';
import trace from './__fixtures__/trace.frames.json';
import volume from './__fixtures__/stats-volume.frames.json';
import domains from './__fixtures__/stats-domains.frames.json';

// Expectations come from the recorded answers themselves, so re-recording keeps these tests valid.
const env = (fixture: unknown) => fixture as ApiEnvelope<unknown>;
const field = (frame: ReturnType<typeof toFrames>[number], name: string) => {
  const found = frame.fields.find((f) => f.name === name);
  if (!found) {
    throw new Error(`frame ${frame.name} has no field ${name}`);
  }
  return found;
};

describe('toFrames on recorded answers', () => {
  it('search: one table frame with every recorded field, values and types, refId set', () => {
    const frames = toFrames(env(messages), 'A');
    expect(frames).toHaveLength(1);
    const [frame] = frames;
    const recorded = frameFixture(messages).items[0];
    expect(frame.refId).toBe('A');
    expect(frame.name).toBe('messages');
    expect(frame.meta?.preferredVisualisationType).toBe('table');
    expect(frame.fields.map((f) => [f.name, f.type])).toEqual(recorded.schema.fields.map((f) => [f.name, f.type]));
    expect(frame.length).toBe(recorded.data.values[0].length);
    for (const name of ['queue_id', 'recipient', 'status', 'delay_seconds']) {
      expect(field(frame, name).values).toEqual(fixtureColumn(messages, 0, name));
    }
  });

  it('search: times are epoch ms, delays in seconds, queue IDs link to the trace dashboard', () => {
    const [frame] = toFrames(env(messages), 'A');
    const time = field(frame, 'time');
    expect(time.type).toBe(FieldType.time);
    expect(time.values.every((v) => typeof v === 'number' && v > 1.6e12)).toBe(true);
    expect(field(frame, 'delay_seconds').config.unit).toBe('s');
    const link = field(frame, 'queue_id').config.links?.[0];
    expect(link?.url).toMatch(/^\/d\/postfix-trace\/[^?]+\?var-queue_id=\$\{__value\.raw\}&.*\$\{__url_time_range\}/);
  });

  it('a truncated answer carries a warning notice and the next cursor in meta', () => {
    expect(messages.truncated).toBe(true); // recorded with limit=3 on purpose
    const [frame] = toFrames(env(messages), 'A');
    expect(frame.meta?.notices).toEqual([expect.objectContaining({ severity: 'warning', text: expect.stringMatching(/More rows/) })]);
    expect(frame.meta?.custom).toEqual({ truncated: true, nextCursor: messages.next_cursor });
  });

  it('leaves the answer untouched: converting it twice still gives one notice', () => {
    toFrames(env(messages), 'A');
    const [frame] = toFrames(env(messages), 'A');
    expect(frame.meta?.notices).toHaveLength(1);
    expect(JSON.stringify(messages)).not.toMatch(/notices/);
  });

  it('trace: message, recipients, attempts, links, lines; all with the refId, no notice', () => {
    const frames = toFrames(env(trace), 'T');
    expect(frames.map((f) => f.name)).toEqual(['message', 'recipients', 'attempts', 'links', 'lines']);
    expect(frames.every((f) => f.refId === 'T')).toBe(true);
    expect(frames.every((f) => f.meta?.notices === undefined)).toBe(true);
    expect(frames[4].meta?.preferredVisualisationType).toBe('logs');
    expect(field(frames[0], 'field').values).toEqual(fixtureColumn(trace, 0, 'field'));
    expect(field(frames[1], 'recipient').values).toEqual(fixtureColumn(trace, 1, 'recipient'));
    expect(field(frames[2], 'time').type).toBe(FieldType.time);
    frames.forEach((f, i) => expect(f.length).toBe(frameFixture(trace).items[i].data.values[0]?.length ?? 0));
  });

  it('stats volume: a time series (time first, then counts)', () => {
    const [frame] = toFrames(env(volume), 'S');
    expect(frame.meta?.preferredVisualisationType).toBe('graph');
    expect(frame.fields.map((f) => [f.name, f.type])).toEqual([
      ['time', 'time'],
      ['received', 'number'],
      ['sent', 'number'],
      ['deferred', 'number'],
      ['bounced', 'number'],
      ['expired', 'number'],
      ['rejected', 'number'],
    ]);
    expect(field(frame, 'time').values).toEqual(fixtureColumn(volume, 0, 'time'));
    expect(field(frame, 'sent').values).toEqual(fixtureColumn(volume, 0, 'sent'));
  });

  it('stats domains: a table with rates in percentunit', () => {
    const [frame] = toFrames(env(domains), 'D');
    expect(frame.name).toBe('domains');
    expect(field(frame, 'bounce_rate').config.unit).toBe('percentunit');
    expect(field(frame, 'defer_rate').config.unit).toBe('percentunit');
    expect(field(frame, 'domain').values).toEqual(fixtureColumn(domains, 0, 'domain'));
  });

  it('truncated without a cursor (a capped top-N table) still gets the notice', () => {
    const [frame] = toFrames({ ...env(domains), truncated: true, next_cursor: null }, 'D');
    expect(frame.meta?.custom).toEqual({ truncated: true, nextCursor: null });
    expect(frame.meta?.notices).toHaveLength(1);
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
