// Following a job until it ends, through the first channel that works: a WebSocket, else
// server-sent events, else polling. A refusal (a 4xx) is final; a channel that breaks hands
// over to the next one, and polling rides out network errors and 5xx, backing off.

import { ApiError, getJSON, readEvents, request, sleep, socketURL } from './api.js';

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

// A socket not open by then (a proxy holding it, say) is closed, and the next channel tried.
const SOCKET_OPEN_MS = 5000;
const MAX_BACKOFF_MS = 30_000;

/**
 * Follows job `id` until it ends: `onUpdate(job)` with each state it reports, `onChannel(text)`
 * with how it is followed, `onLost(message)` when the gateway refused to tell. Returns a
 * function that stops following; after it, none of these is called.
 */
export function followJob(id, { onUpdate, onChannel, onLost }) {
  const session = {
    stopped: false,
    socket: null,
    controller: new AbortController(),
    update: (job) => session.stopped || onUpdate(job),
    channel: (text) => session.stopped || onChannel(text),
  };
  (async () => {
    for (const via of [viaSocket, viaEvents, viaPolling]) {
      try {
        if (await via(id, session)) return;
      } catch (error) {
        if (session.stopped) return;
        if (isRefusal(error)) {
          onLost(error.message);
          return;
        }
      }
    }
  })();
  return () => {
    session.stopped = true;
    session.controller.abort();
    session.socket?.close();
  };
}

/** Whether an error is the gateway's final answer (no such job, a bad key), rather than a
 * glitch worth trying again: a 4xx, but 408 and 429, which ask to try later. */
function isRefusal(error) {
  return error instanceof ApiError && error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status);
}

/** The job in a channel's message, or null when it is not one (it is then skipped). */
function jobIn(data) {
  try {
    const job = JSON.parse(data);
    return job && typeof job.status === 'string' ? job : null;
  } catch {
    return null;
  }
}

/** Resolves true once the job has ended; rejects when the socket fails, closes early or
 * does not open in time. */
function viaSocket(id, session) {
  session.channel('push · WebSocket (connecting)');
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(socketURL(`/v1/jobs/${encodeURIComponent(id)}/ws`));
    session.socket = socket;
    let ended = false;
    // Rejected here rather than on the close event, which a blocked socket may never fire.
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('The WebSocket did not open in time.'));
    }, SOCKET_OPEN_MS);
    socket.addEventListener('open', () => {
      clearTimeout(timer);
      session.channel('push · WebSocket');
    });
    socket.addEventListener('message', (event) => {
      const job = jobIn(event.data);
      if (!job) return;
      session.update(job);
      ended = TERMINAL.has(job.status);
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(timer);
      session.socket = null;
      if (ended) resolve(true);
      else if (event.code === 4404) reject(new ApiError(404, { message: event.reason || `No job ${id}.` }));
      else reject(new Error(`The WebSocket closed (${event.code}).`));
    });
  });
}

/** Server-sent events, read with fetch so that the key goes in a header. */
async function viaEvents(id, session) {
  const response = await request(`/v1/jobs/${encodeURIComponent(id)}/events`, { signal: session.controller.signal });
  session.channel('push · SSE');
  for await (const job of readEvents(response)) {
    session.update(job);
    if (TERMINAL.has(job.status)) return true;
  }
  return false;
}

/** Polling, as often as the job's poll_after_ms says; after a failure, again after 1 s,
 * then 2, 4… up to 30 s, until the gateway answers. */
async function viaPolling(id, session) {
  let failures = 0;
  for (;;) {
    let wait;
    try {
      const job = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`, { signal: session.controller.signal });
      session.channel('polling');
      session.update(job);
      if (TERMINAL.has(job.status)) return true;
      failures = 0;
      wait = job.poll_after_ms || 1000;
    } catch (error) {
      if (error.name === 'AbortError' || isRefusal(error)) throw error;
      wait = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures++);
      session.channel(`polling (retrying in ${wait / 1000} s: ${error.message})`);
    }
    await sleep(wait);
    if (session.stopped) return false;
  }
}
