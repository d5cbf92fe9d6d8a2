import { annotationFrame, framesToEvents } from './annotations';

describe('annotation frames and events', () => {
  it('an item without an end is a point event; an unparsable start is dropped', () => {
    const frame = annotationFrame(
      [
        { time: '2026-11-29T03:00:00Z', time_end: null, title: 'Point', text: 't', tags: ['postfix'] },
        { time: 'not a time', title: 'Broken', text: '', tags: [] },
        { time: '2026-11-29T04:00:00Z', time_end: '2026-11-29T04:00:00Z', title: 'Zero length', text: '', tags: [] },
      ],
      'Anno'
    );
    expect(frame.length).toBe(3);
    expect(framesToEvents([frame])).toEqual([
      { time: Date.parse('2026-11-29T03:00:00Z'), timeEnd: undefined, isRegion: false, title: 'Point', text: 't', tags: ['postfix'] },
      { time: Date.parse('2026-11-29T04:00:00Z'), timeEnd: undefined, isRegion: false, title: 'Zero length', text: '', tags: [] },
    ]);
  });

  it('no items, no events', () => {
    expect(framesToEvents([annotationFrame([], 'Anno')])).toEqual([]);
    expect(framesToEvents([])).toEqual([]);
  });
});
