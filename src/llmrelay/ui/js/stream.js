// One streamed chat completion: text and tool calls put together as the chunks arrive,
// with the request id, the usage and the client-side timings. Chat and Compare share it.

import { readEvents, request } from './api.js';

/**
 * Streams `body` (a chat request) from /v1/chat/completions, calling `onUpdate(reply)` after
 * each chunk that changed it. Resolves to the reply when the stream ends, is stopped through
 * `signal` (reply.stopped) or breaks midway (reply.error, with what came before it). An
 * error before the stream starts (a 4xx, the network) rejects, with the ApiError, or with
 * the AbortError when stopped before any answer.
 */
export async function streamChat(body, { signal, onUpdate = () => {} } = {}) {
  const started = performance.now();
  const response = await request('/v1/chat/completions', {
    method: 'POST',
    body: { ...body, stream: true, stream_options: { include_usage: true } },
    signal,
  });
  const overhead = response.headers.get('x-llmrelay-overhead-ms');
  const reply = {
    requestId: response.headers.get('x-request-id'),
    overheadMs: overhead === null ? null : Number(overhead),
    content: '',
    toolCalls: [], // [{id, type, function: {name, arguments}}], by the chunks' index
    finishReason: null,
    usage: null,
    ttftMs: null, // to the first text or tool call
    totalMs: null,
    stopped: false,
    error: null,
  };
  try {
    for await (const chunk of readEvents(response)) {
      if (chunk.usage) reply.usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (choice) {
        const delta = choice.delta || {};
        if (delta.content) reply.content += delta.content;
        for (const call of delta.tool_calls || []) addToolCall(reply.toolCalls, call);
        if (choice.finish_reason) reply.finishReason = choice.finish_reason;
        if (reply.ttftMs === null && (delta.content || delta.tool_calls)) {
          reply.ttftMs = performance.now() - started;
        }
      }
      onUpdate(reply);
    }
  } catch (error) {
    if (error.name === 'AbortError') reply.stopped = true;
    else reply.error = error;
  }
  reply.totalMs = performance.now() - started;
  return reply;
}

/** Merges one streamed tool-call fragment into the calls: the first names it, the rest add
 * to its arguments. */
function addToolCall(calls, fragment) {
  const index = fragment.index ?? calls.length;
  const call = (calls[index] ||= { id: '', type: 'function', function: { name: '', arguments: '' } });
  if (fragment.id) call.id = fragment.id;
  if (fragment.function?.name) call.function.name += fragment.function.name;
  if (fragment.function?.arguments) call.function.arguments += fragment.function.arguments;
}

/**
 * The assistant message of a reply, as the next request's history holds it; null when there
 * is nothing to keep. A reply cut short (stopped, or broken off) keeps only its text: its
 * tool calls may be incomplete, and calls that get no results make OpenAI-style upstreams
 * refuse the next request.
 */
export function assistantMessage(reply) {
  const calls = reply.stopped || reply.error ? [] : reply.toolCalls.filter(Boolean);
  if (calls.length) return { role: 'assistant', content: reply.content || null, tool_calls: calls };
  return reply.content ? { role: 'assistant', content: reply.content } : null;
}
