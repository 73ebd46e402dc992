// The Chat tab: a multi-turn conversation that streams in, with a system prompt, sampling
// parameters, images (attachments.js), tools (calls shown as cards, their results typed
// back), Stop, Clear and Export.

import { recordedCost } from './api.js';
import { hasAttachments, initAttachments, putBackAttachments, takeAttachments, updateAttach } from './attachments.js';
import { byTestId, download, h, markField, nearPageBottom, sendOnEnter, showError } from './dom.js';
import { duration, tokens, usd } from './format.js';
import { openInspector } from './inspector.js';
import { enableCodeCopy, patchMarkdown } from './markdown.js';
import { fillModelSelect } from './models.js';
import { readParams, readTools } from './params.js';
import { assistantMessage, streamChat } from './stream.js';
import { toolCard } from './toolcall.js';
import { typewriter } from './typing.js';

const PARAMS = ['temperature', 'top_p', 'max_tokens', 'presence_penalty', 'frequency_penalty', 'seed', 'stop'];

const log = document.getElementById('chat-log');
const empty = document.getElementById('chat-empty');
const form = document.getElementById('chat-form');
const input = byTestId('chat-input');
const select = byTestId('model-select');
const system = byTestId('system-prompt');
const toolsInput = byTestId('tools-json');
const toolsError = document.getElementById('tools-error');
const errorBox = byTestId('chat-error');
const sendButton = byTestId('send');
const stopButton = byTestId('stop');

let history = []; // the conversation as the API takes it, without the system prompt
let pendingCalls = []; // the last answer's tool calls, each {id, result: <textarea>}
let controller = null; // the AbortController of the answer streaming in, if any
let conversation = 0; // counts Clears, so that an answer stopped by one is not kept
let resultFields = 0; // for the ids of the tool-result fields

export function initChat() {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  sendOnEnter(input, send);
  stopButton.addEventListener('click', () => controller?.abort());
  byTestId('clear').addEventListener('click', clear);
  byTestId('export').addEventListener('click', exportChat);
  toolsInput.addEventListener('input', () => {
    try {
      readTools(toolsInput.value);
      markField(toolsInput, toolsError, '');
    } catch (error) {
      markField(toolsInput, toolsError, error.message);
    }
  });
  enableCodeCopy(log);
  initAttachments();
}

/** Called when the model list is (re)loaded. */
export function setChatModels() {
  fillModelSelect(select);
  updateAttach();
}

// -- sending ---------------------------------------------------------------------------------

async function send() {
  if (controller) return;
  const text = input.value.trim();
  if (!text && !hasAttachments() && !pendingCalls.length) return;
  let options;
  try {
    options = requestOptions();
  } catch (error) {
    showError(errorBox, error.message);
    return;
  }
  if (!select.value) {
    showError(errorBox, 'There is no model to send to: the gateway listed none.');
    return;
  }
  showError(errorBox, '');

  // What this turn adds: taken back if it fails before any answer, for the user to retry.
  const before = history.length;
  const calls = pendingCalls;
  const images = takeAttachments();
  let userElement = null;
  // Results typed into the last answer's tool-call cards go first, then the new message.
  for (const call of calls) {
    history.push({ role: 'tool', tool_call_id: call.id, content: call.result.value || 'No result.' });
    call.result.readOnly = true;
  }
  pendingCalls = [];
  if (text || images.length) {
    const message = userMessage(text, images);
    history.push(message);
    userElement = userView(message);
    log.append(userElement);
    input.value = '';
  }

  const model = select.value;
  const messages = withSystemPrompt(history);
  const view = assistantView(model);
  log.append(view.element);
  empty.hidden = true;
  window.scrollTo(0, document.body.scrollHeight);
  setStreaming(true);
  controller = new AbortController();
  const current = conversation;
  const writer = typewriter((reply, shown) => {
    const follow = nearPageBottom();
    view.render(reply, shown);
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  });
  try {
    const reply = await streamChat(
      { model, messages, ...options },
      { signal: controller.signal, onUpdate: writer.update },
    );
    writer.finish(reply); // on Stop too: all that came shows at once
    view.finish(reply);
    const message = current === conversation ? assistantMessage(reply) : null;
    if (message) history.push(message);
    if (message?.tool_calls) pendingCalls = view.askResults();
    if (reply.error) showError(errorBox, reply.error.message);
  } catch (error) {
    if (error.name === 'AbortError') {
      view.finish(null);
    } else {
      // Refused, or the gateway could not be reached: nothing was answered, so the turn
      // is taken back, its text and images put back in the composer.
      view.element.remove();
      userElement?.remove();
      if (current === conversation) {
        history.length = before;
        for (const call of calls) call.result.readOnly = false;
        pendingCalls = calls;
        if (text) input.value = input.value ? `${text}\n${input.value}` : text;
        putBackAttachments(images);
      }
      if (!log.querySelector('.message')) empty.hidden = false;
      showError(errorBox, error.message);
    }
  } finally {
    controller = null;
    setStreaming(false);
  }
}

/** The messages, after the system prompt when there is one. */
function withSystemPrompt(messages) {
  return system.value.trim() ? [{ role: 'system', content: system.value }, ...messages] : messages;
}

function setStreaming(on) {
  stopButton.disabled = !on;
  sendButton.disabled = on;
}

function userMessage(text, images) {
  if (!images.length) return { role: 'user', content: text };
  const parts = text ? [{ type: 'text', text }] : [];
  return { role: 'user', content: [...parts, ...images.map((url) => ({ type: 'image_url', image_url: { url } }))] };
}

/** The request's fields beyond model and messages: the parameters set, and the tools. */
function requestOptions() {
  const options = readParams(PARAMS, (name) => byTestId(`param-${name}`));
  const tools = readTools(toolsInput.value);
  if (tools) options.tools = tools;
  return options;
}

// -- messages --------------------------------------------------------------------------------

function userView(message) {
  const parts = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
  const text = parts
    .filter((part) => part.type === 'text')
    .map((part) => part.text)
    .join('\n');
  const images = parts.filter((part) => part.type === 'image_url');
  return h(
    'article',
    { class: 'message', 'data-testid': 'chat-message', 'data-role': 'user', 'aria-label': 'You' },
    images.length
      ? h(
          'div',
          { class: 'user-images' },
          images.map((part) => h('img', { src: part.image_url.url, alt: 'Attached image' })),
        )
      : null,
    text ? h('div', { class: 'user-text', text }) : null,
  );
}

/**
 * The answer of `model` as it streams in: `render(reply, text)` each frame, with the text
 * revealed so far; `finish(reply)` once it has ended (`reply` is null when Stop came before
 * the answer started); then `askResults()` adds result fields to its tool-call cards.
 */
function assistantView(model) {
  const content = h('div', { class: 'message-content markdown', 'data-testid': 'message-content' });
  const calls = h('div', { class: 'tool-calls' });
  const stats = h('span', {
    class: 'message-stats',
    'data-testid': 'message-stats',
    title:
      "TTFT: time to the first token; total: time to the end; tokens: prompt → completion; overhead: the gateway's own time",
    text: 'Waiting for the first token…',
  });
  const cost = h('span', { class: 'message-stats', 'data-testid': 'message-cost', hidden: true });
  const inspect = h('button', {
    type: 'button',
    class: 'button ghost small',
    'data-testid': 'inspect-button',
    disabled: true,
    text: 'Inspect',
  });
  const element = h(
    'article',
    {
      class: 'message',
      'data-testid': 'chat-message',
      'data-role': 'assistant',
      'data-streaming': 'true',
      // Screen readers wait for the whole answer, rather than reading each frame's rewrite.
      'aria-busy': 'true',
      'aria-label': `Answer of ${model}`,
    },
    h('span', { class: 'message-model', 'data-testid': 'message-model', text: model }),
    content,
    calls,
    h('div', { class: 'message-foot' }, stats, cost, inspect),
  );
  let requestId = null;
  let drawnCalls = '';
  inspect.addEventListener('click', () => requestId && openInspector(requestId));

  return {
    element,
    render(reply, text) {
      patchMarkdown(content, text);
      if (reply.ttftMs !== null) stats.textContent = `TTFT ${duration(reply.ttftMs)} · writing…`;
      // The cards are redrawn only when a call changed.
      const latest = JSON.stringify(reply.toolCalls);
      if (latest !== drawnCalls) calls.replaceChildren(...reply.toolCalls.filter(Boolean).map(toolCard));
      drawnCalls = latest;
    },
    finish(reply) {
      element.dataset.streaming = 'false';
      element.setAttribute('aria-busy', 'false');
      stats.textContent = reply ? statsLine(reply) : 'Stopped before the answer started.';
      requestId = reply && reply.requestId;
      inspect.disabled = !requestId;
      if (requestId) showCost(cost, requestId); // not awaited: the next message can go
    },
    askResults: () => [...calls.children].map(askResult),
  };
}

function statsLine(reply) {
  const parts = [
    reply.stopped ? 'stopped' : null,
    reply.error ? 'broke off' : null,
    reply.finishReason === 'length' ? 'cut at max_tokens' : null,
    `TTFT ${duration(reply.ttftMs)}`,
    `total ${duration(reply.totalMs)}`,
    tokens(reply.usage),
    reply.overheadMs !== null ? `overhead ${duration(reply.overheadMs)}` : null,
  ];
  return parts.filter(Boolean).join(' · ');
}

/** Shows the recorded cost of the request in `cell`, once the gateway has written it. */
async function showCost(cell, requestId) {
  cell.hidden = false;
  cell.textContent = 'cost …';
  cell.textContent = `cost ${usd(await recordedCost(requestId))}`;
}

/** Adds a result field to a finished tool-call card; its value goes back with the next Send. */
function askResult(card) {
  const id = `tool-result-${++resultFields}`;
  const result = h('textarea', { id, rows: 2, class: 'mono', placeholder: 'The result, sent back with the next Send' });
  card.append(h('label', { for: id, text: `Result of ${card.dataset.name}` }), result);
  return { id: card.dataset.callId, result };
}

// -- clear and export ------------------------------------------------------------------------

function clear() {
  controller?.abort();
  conversation++;
  history = [];
  pendingCalls = [];
  log.replaceChildren(empty);
  empty.hidden = false;
  showError(errorBox, '');
  input.focus();
}

/**
 * Downloads the conversation as the chat request that would continue it (model, messages,
 * the parameters and tools set), with `exported_at`, when it was exported, added: drop that
 * field to send the file as it is.
 */
function exportChat() {
  let options = {};
  try {
    options = requestOptions();
  } catch {
    // A parameter or the tools do not parse: exported without them.
  }
  const exported = new Date().toISOString();
  const body = { exported_at: exported, model: select.value, messages: withSystemPrompt(history), ...options };
  download(`llmrelay-chat-${exported.slice(0, 19).replace(/[:T]/g, '-')}.json`, JSON.stringify(body, null, 2));
}
