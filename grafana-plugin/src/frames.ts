import { DataFrame, DataFrameJSON, dataFrameFromJSON, toDataFrame } from '@grafana/data';

import { ApiEnvelope } from './types';

function isFrameJSON(item: unknown): item is DataFrameJSON {
  return typeof item === 'object' && item !== null && ('schema' in item || 'data' in item);
}

/**
 * Converts an API answer to data frames. With `format=frames` each item is a DataFrameJSON
 * (column-major, times in ms, units and data links in field config) and is taken as it is;
 * plain rows (an API that ignored `format`) still make one table rather than nothing.
 */
export function toFrames(envelope: ApiEnvelope<unknown>, refId: string): DataFrame[] {
  const { items } = envelope;
  if (!items.length) {
    return [];
  }
  const frames = items.every(isFrameJSON) ? items.map((item) => dataFrameFromJSON(item)) : [toDataFrame(items)];
  for (const frame of frames) {
    frame.refId = refId;
  }
  if (envelope.truncated) {
    markTruncated(frames[0], envelope.next_cursor);
  }
  return frames;
}

/** Tells the panel user that rows are missing: the API stopped at its row cap or at `limit`. */
function markTruncated(frame: DataFrame, nextCursor: string | null) {
  // a fresh meta: dataFrameFromJSON shares the schema's object with the answer
  const meta = frame.meta ?? {};
  frame.meta = {
    ...meta,
    notices: [
      ...(meta.notices ?? []),
      {
        severity: 'warning',
        text: 'More rows match than are shown (row limit reached): narrow the filters or time range, or raise the limit.',
      },
    ],
    custom: { ...meta.custom, truncated: true, nextCursor },
  };
}
