import { AnnotationEvent, AnnotationSupport, DataFrame, FieldType, createDataFrame } from '@grafana/data';
import { of } from 'rxjs';

import { AnnotationQueryEditor } from './components/QueryEditor';
import { AnnotationItem, PIQuery } from './types';

/** ISO 8601 -> epoch ms; undefined for missing or unparsable values. */
function ms(iso?: string | null): number | undefined {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

/** Incident items of `GET /api/v1/annotations` as one frame, with the field names Grafana's annotation processing knows. */
export function annotationFrame(items: AnnotationItem[], refId: string): DataFrame {
  return createDataFrame({
    refId,
    name: 'annotations',
    fields: [
      { name: 'time', type: FieldType.time, values: items.map((i) => ms(i.time)) },
      { name: 'timeEnd', type: FieldType.time, values: items.map((i) => ms(i.time_end)) },
      { name: 'title', type: FieldType.string, values: items.map((i) => i.title) },
      { name: 'text', type: FieldType.string, values: items.map((i) => i.text) },
      { name: 'tags', type: FieldType.other, values: items.map((i) => i.tags ?? []) },
    ],
  });
}

/** Frames from `annotationFrame` -> events; a bucket run with an end time becomes a region. */
export function framesToEvents(frames: DataFrame[]): AnnotationEvent[] {
  const events: AnnotationEvent[] = [];
  for (const frame of frames) {
    const col = (name: string) => frame.fields.find((f) => f.name === name)?.values;
    const [time, timeEnd, title, text, tags] = ['time', 'timeEnd', 'title', 'text', 'tags'].map(col);
    for (let i = 0; i < frame.length; i++) {
      const start = time?.[i];
      if (typeof start !== 'number') {
        continue;
      }
      const end = timeEnd?.[i];
      const region = typeof end === 'number' && end > start;
      events.push({
        time: start,
        timeEnd: region ? end : undefined,
        isRegion: region,
        title: title?.[i],
        text: text?.[i],
        tags: tags?.[i] ?? [],
      });
    }
  }
  return events;
}

/**
 * Annotation queries run through `query()` as queryType `annotations`; their editor shows only
 * the domain and host filters.
 */
export const annotationSupport: AnnotationSupport<PIQuery> = {
  prepareQuery(anno) {
    const target = anno.target;
    return { refId: target?.refId ?? 'Anno', domain: target?.domain, host: target?.host, queryType: 'annotations' };
  },
  processEvents(_anno, frames) {
    return of(framesToEvents(frames));
  },
  QueryEditor: AnnotationQueryEditor,
  getDefaultQuery() {
    return { queryType: 'annotations' };
  },
};
