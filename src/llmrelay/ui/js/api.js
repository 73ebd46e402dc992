// The gateway's API, same origin: the key, requests with OpenAI-shaped errors, and SSE.

const KEY_STORAGE = 'llmrelay.key';

/** An API error, from an OpenAI-shaped error body, a mid-stream error event, or the network. */
export class ApiError extends Error {
  constructor(status, error = {}) {
    super(error.message || (status ? `The gateway answered ${status}.` : 'Could not reach the gateway.'));
    this.name = 'ApiError';
    this.status = status; // 0 when the gateway could not be reached
  }
}

// -- the key ---------------------------------------------------------------------------------

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || '';
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

let unauthorized = () => {};

/** Sets what happens on any 401: the key dialog opens, with the server's message. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

// -- requests --------------------------------------------------------------------------------

/**
 * Fetches `path`; resolves to the Response when it is 2xx, else throws an ApiError (a 401
 * also calls the unauthorized handler). An abort rethrows the AbortError as it is.
 * `body`, when given, is sent as JSON.
 */
export async function request(path, { method = 'GET', body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { ...headers } };
  const key = apiKey();
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0);
  }
  if (response.ok) return response;
  const error = new ApiError(response.status, await errorBody(response));
  if (response.status === 401) unauthorized(error);
  throw error;
}

async function errorBody(response) {
  try {
    const body = await response.json();
    return body && typeof body.error === 'object' ? body.error : {};
  } catch {
    return {};
  }
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

export async function postJSON(path, body, options = {}) {
  return (await request(path, { ...options, method: 'POST', body })).json();
}

/** The WebSocket URL of an API path, with the key as ?api_key=, since browsers cannot set
 * headers on a WebSocket. */
export function socketURL(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const key = apiKey();
  if (key) url.searchParams.set('api_key', key);
  return url.href;
}

/**
 * The JSON data of each server-sent event of a response, as it arrives, until
 * `data: [DONE]` or the end of the body. An `{"error": ...}` event throws an ApiError.
 */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line[5] === ' ' ? 6 : 5))
          .join('\n');
        if (!data) continue; // a comment or a keep-alive
        if (data === '[DONE]') return;
        const event = JSON.parse(data);
        if (event && event.error && !event.object) throw new ApiError(response.status, event.error);
        yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * A request's inspector record. The gateway writes it just after the response ends, so the
 * gateway is asked to wait a little for a record that is not there yet, rather than
 * answering 404 to a request that has only just finished.
 */
export async function requestRecord(id, { waitMs = 5000, signal } = {}) {
  return getJSON(`/v1/requests/${encodeURIComponent(id)}?wait_ms=${waitMs}`, { signal });
}

/**
 * The recorded cost of a request in USD, or null when it is unknown (no record, or no price
 * for its model). An aborted look-up still throws its AbortError.
 */
export async function recordedCost(id, { signal } = {}) {
  try {
    return (await requestRecord(id, { signal })).cost_usd;
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    return null;
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
