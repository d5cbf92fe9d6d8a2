import { ApiError, apiGet, toApiError } from './api';
import { PROXY_URL, fakeFetch, paramsOf } from './test/helpers';
import error400 from './__fixtures__/error-400.json';
import error401 from './__fixtures__/error-401.json';
import error404 from './__fixtures__/error-404.json';
import health from './__fixtures__/health.json';

let mockBackend = fakeFetch({});
jest.mock('@grafana/runtime', () => ({ getBackendSrv: () => mockBackend }));

describe('apiGet', () => {
  it('GETs through the data-proxy route "api" with the parameters in the query string', async () => {
    mockBackend = fakeFetch({ [`${PROXY_URL}/api/api/v1/health`]: { body: health } });
    const envelope = await apiGet(PROXY_URL, '/api/v1/health', { status: ['a', 'b'], x: undefined });
    expect(envelope).toEqual(health);
    expect(mockBackend.calls).toHaveLength(1);
    expect(mockBackend.calls[0]).toMatchObject({ method: 'GET', showErrorAlert: false });
    expect(mockBackend.calls[0].url).toBe(`${PROXY_URL}/api/api/v1/health?status=a&status=b`);
    expect(paramsOf(mockBackend.calls[0].url)).toEqual([
      ['status', 'a'],
      ['status', 'b'],
    ]);
  });

  it('never sends a token itself: the proxy route adds it', async () => {
    mockBackend = fakeFetch({ [`${PROXY_URL}/api/api/v1/health`]: { body: health } });
    await apiGet(PROXY_URL, '/api/v1/health');
    expect(JSON.stringify(mockBackend.calls[0])).not.toMatch(/authorization|bearer|token/i);
  });

  it('rejects an answer without items (e.g. an HTML page at the configured URL)', async () => {
    mockBackend = fakeFetch({ [`${PROXY_URL}/api/api/v1/health`]: { body: '<html>hello</html>' } });
    await expect(apiGet(PROXY_URL, '/api/v1/health')).rejects.toThrow(/no "items".*check the data source URL/);
  });

  it('turns the API error shape into an ApiError with status and parameter, naming the parameter once', async () => {
    mockBackend = fakeFetch({ [`${PROXY_URL}/api/api/v1/messages`]: { status: 400, body: error400 } });
    const err = await apiGet(PROXY_URL, '/api/v1/messages', { from: 'yesterday' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.parameter).toBe('from');
    // recorded: "from: not a time: 'yesterday' (...)" with parameter "from"
    expect(err.message).toBe(`Postfix Insights API error 400: ${error400.error.message}`);
  });
});

describe('toApiError', () => {
  it('401 and 404 keep the API message', () => {
    expect(toApiError({ status: 401, data: error401 }).message).toBe(`Postfix Insights API error 401: ${error401.error.message}`);
    expect(toApiError({ status: 404, data: error404 }).message).toMatch(
      /^Postfix Insights API error 404: no message with queue ID NOSUCHQUEUEID/
    );
  });

  it('adds the parameter when the message does not start with it', () => {
    const body = { error: { status: 400, message: 'must be before to', parameter: 'from' } };
    expect(toApiError({ status: 400, data: body }).message).toBe(
      'Postfix Insights API error 400: must be before to (parameter "from")'
    );
  });

  it("Grafana's proxy error body ({message})", () => {
    expect(toApiError({ status: 502, data: { message: 'Bad Gateway' } }).message).toBe(
      'Postfix Insights API error 502: Bad Gateway'
    );
  });

  it('a bare HTTP status', () => {
    expect(toApiError({ status: 503, statusText: 'Service Unavailable', data: '' }).message).toBe(
      'Postfix Insights API error 503 Service Unavailable'
    );
  });

  it('a thrown Error or string', () => {
    expect(toApiError(new Error('socket hang up')).message).toBe('Postfix Insights API request failed: socket hang up');
    expect(toApiError('boom').message).toBe('Postfix Insights API request failed: boom');
  });

  it('passes an ApiError through unchanged', () => {
    const e = new ApiError('x', 418);
    expect(toApiError(e)).toBe(e);
  });
});
