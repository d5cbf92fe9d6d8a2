import { getBackendSrv } from '@grafana/runtime';
import { lastValueFrom } from 'rxjs';

import { ApiEnvelope } from './types';

/** Query parameters; undefined and '' are left out, arrays become repeated keys (`status=a&status=b`). */
export type Params = Record<string, string | number | string[] | undefined>;

/** A failed API call, with the API's own words when it sent its error shape. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly parameter?: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function queryString(params: Params): string {
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== '') {
        qs.append(key, String(v));
      }
    }
  }
  return qs.toString();
}

/**
 * The one way this plugin talks to the API: GET through Grafana's data proxy.
 * `baseUrl` is the instance's proxy URL; `/api` is the route in plugin.json that adds the
 * upstream URL and the bearer token on Grafana's server, so the token never reaches the browser.
 */
export async function apiGet<T>(
  baseUrl: string,
  path: string,
  params: Params = {},
  requestId?: string
): Promise<ApiEnvelope<T>> {
  const qs = queryString(params);
  const url = `${baseUrl}/api${path}${qs ? `?${qs}` : ''}`;
  let body: unknown;
  try {
    const response = await lastValueFrom(
      getBackendSrv().fetch<unknown>({ url, method: 'GET', showErrorAlert: false, requestId })
    );
    body = response.data;
  } catch (err) {
    throw toApiError(err);
  }
  if (!isEnvelope<T>(body)) {
    // e.g. the URL points at some other web server that answered 200 with HTML
    throw new ApiError('Unexpected answer from the Postfix Insights API (no "items"); check the data source URL');
  }
  return body;
}

function isEnvelope<T>(body: unknown): body is ApiEnvelope<T> {
  return typeof body === 'object' && body !== null && Array.isArray((body as ApiEnvelope<T>).items);
}

interface FetchErrorLike {
  status?: number;
  statusText?: string;
  data?: unknown;
  message?: string;
}

/** Turns whatever fetch threw into one readable message: the API's error shape first, then Grafana's proxy errors. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) {
    return err;
  }
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as FetchErrorLike;
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Record<string, unknown>;
  const apiErr = data.error as { status?: number; message?: string; parameter?: string | null } | undefined;
  const status = apiErr?.status ?? e.status;
  if (apiErr && typeof apiErr === 'object' && apiErr.message) {
    // the API usually starts the message with the parameter ("from: not a time ..."); name it once
    const named = !apiErr.parameter || apiErr.message.startsWith(`${apiErr.parameter}:`);
    const param = named ? '' : ` (parameter "${apiErr.parameter}")`;
    return new ApiError(`Postfix Insights API error ${status}: ${apiErr.message}${param}`, status, apiErr.parameter ?? undefined);
  }
  // Grafana's data proxy answers {"message": "..."} when it cannot reach the upstream
  if (typeof data.message === 'string' && data.message) {
    return new ApiError(`Postfix Insights API error${status ? ` ${status}` : ''}: ${data.message}`, status);
  }
  if (status) {
    return new ApiError(`Postfix Insights API error ${status}${e.statusText ? ` ${e.statusText}` : ''}`, status);
  }
  return new ApiError(`Postfix Insights API request failed: ${e.message || 'unknown error'}`);
}
