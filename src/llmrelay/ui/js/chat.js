// The Chat tab: a multi-turn conversation that streams in, with a system prompt, sampling
// parameters, images, tools (calls shown as cards, their results typed back), Stop, Clear
// and Export.

import { byTestId, download, h, nearPageBottom, showError } from './dom.js';
import { duration, tokens } from './format.js';
import { openInspector } from './inspector.js';
import { enableCodeCopy, renderMarkdown } from './markdown.js';
import { acceptsImages, fillModelSelect } from './models.js';
import { assistantMessage, streamChat } from './stream.js';
import { toolCard } from './toolcall.js';

const PARAMS = ['temperature', 'top_p', 'max_tokens', 'presence_penalty', 'frequency_penalty', 'seed', 'stop'];
const WHOLE = new Set(['max_tokens', 'seed']);
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

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
const attachInput = byTestId('attach-image');
const attachReason = document.getElementById('attach-reason');
const attachmentList = document.getElementById('chat-attachments');

let history = []; // the conversation as the API takes it, without the system prompt
let attachments = []; // data: URLs of the images for the next message
let pendingCalls = []; // the last answer's tool calls, each {id, result: <textarea>}
let controller = null; // the AbortController of the answer streaming in, if any
let conversation = 0; // counts Clears, so that an answer stopped by one is not kept
let resultFields = 0; // for the ids of the tool-result fields

export function initChat() {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  stopButton.addEventListener('click', () => controller?.abort());
  byTestId('clear').addEventListener('click', clear);
  byTestId('export').addEventListener('click', exportChat);
  select.addEventListener('change', updateAttach);
  attachInput.addEventListener('change', attach);
  toolsInput.addEventListener('input', () => {
    try {
      readTools();
      markTools('');
    } catch (error) {
      markTools(error.message);
    }
  });
  enableCodeCopy(log);
  updateAttach();
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
  if (!text && !attachments.length && !pendingCalls.length) return;
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

  // Results typed into the last answer's tool-call cards go first, then the new message.
  for (const call of pendingCalls) {
    history.push({ role: 'tool', tool_call_id: call.id, content: call.result.value || 'No result.' });
    call.result.readOnly = true;
  }
  pendingCalls = [];
  if (text || attachments.length) {
    const message = userMessage(text, attachments);
    history.push(message);
    log.append(userView(message));
    input.value = '';
    attachments = [];
    showAttachments();
  }

  const messages = withSystemPrompt(history);
  const view = assistantView();
  log.append(view.element);
  empty.hidden = true;
  window.scrollTo(0, document.body.scrollHeight);
  setStreaming(true);
  controller = new AbortController();
  const current = conversation;

  // Chunks arrive faster than the screen refreshes: render the text once per frame.
  let frame = 0;
  const paint = (reply) => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      const follow = nearPageBottom();
      view.render(reply);
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    });
  };
  try {
    const reply = await streamChat(
      { model: select.value, messages, ...options },
      { signal: controller.signal, onUpdate: paint },
    );
    cancelAnimationFrame(frame);
    view.render(reply);
    view.finish(reply);
    if (current === conversation && (reply.content || reply.toolCalls.length)) history.push(assistantMessage(reply));
    if (reply.error) showError(errorBox, reply.error.message);
  } catch (error) {
    if (error.name === 'AbortError') {
      view.finish(null);
    } else {
      view.element.remove();
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
  const options = {};
  for (const name of PARAMS) {
    const field = byTestId(`param-${name}`);
    const value = field.value;
    if (value === '') continue;
    if (!field.checkValidity()) throw new Error(`${name}: ${field.validationMessage}`);
    if (name === 'stop') options.stop = readStop(value);
    else options[name] = WHOLE.has(name) ? parseInt(value, 10) : Number(value);
  }
  const tools = readTools();
  if (tools) options.tools = tools;
  return options;
}

function readStop(value) {
  if (!value.trimStart().startsWith('[')) return value;
  let stop;
  try {
    stop = JSON.parse(value);
  } catch {
    throw new Error('stop: a list must be a JSON array of strings, such as ["END", "\\n\\n"].');
  }
  if (!Array.isArray(stop) || !stop.every((item) => typeof item === 'string') || stop.length > 4) {
    throw new Error('stop: a list must be a JSON array of up to 4 strings.');
  }
  return stop;
}

/**
 * The tool definitions, or null when the field is empty. Takes OpenAI's tools array; a
 * single tool, or bare functions ({name, parameters}), are accepted and wrapped.
 * Throws an Error that says what is wrong.
 */
function readTools() {
  const text = toolsInput.value.trim();
  if (!text) return null;
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (error) {
    throw new Error(`Tools: not valid JSON (${error.message}).`);
  }
  if (!Array.isArray(tools)) tools = [tools];
  return tools.map((tool, index) => {
    if (!tool || typeof tool !== 'object') throw new Error(`Tools: item ${index} is not an object.`);
    const fn = tool.function ?? tool;
    if (tool.type !== undefined && tool.type !== 'function') {
      throw new Error(`Tools: item ${index} has type "${tool.type}"; only "function" tools exist.`);
    }
    if (typeof fn.name !== 'string' || !/^[\w-]{1,64}$/.test(fn.name)) {
      throw new Error(`Tools: item ${index} needs a function name of letters, digits, _ or - (at most 64).`);
    }
    if (
      fn.parameters !== undefined &&
      (typeof fn.parameters !== 'object' || fn.parameters === null || Array.isArray(fn.parameters))
    ) {
      throw new Error(`Tools: the parameters of "${fn.name}" must be a JSON schema object.`);
    }
    return { type: 'function', function: fn };
  });
}

function markTools(message) {
  toolsError.textContent = message;
  toolsError.hidden = !message;
  toolsInput.setAttribute('aria-invalid', String(Boolean(message)));
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

/** An assistant message as it streams in: `render(reply)` as chunks arrive, `finish(reply)`
 * once it has ended. */
function assistantView() {
  const content = h('div', { class: 'message-content markdown', 'data-testid': 'message-content' });
  const calls = h('div', { class: 'tool-calls' });
  const stats = h('span', {
    class: 'message-stats',
    'data-testid': 'message-stats',
    title:
      "TTFT: time to the first token; total: time to the end; tokens: prompt → completion; overhead: the gateway's own time",
    text: 'Waiting for the first token…',
  });
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
      'aria-busy': 'true',
      'aria-label': 'Assistant',
    },
    content,
    calls,
    h('div', { class: 'message-foot' }, stats, inspect),
  );
  let requestId = null;
  inspect.addEventListener('click', () => requestId && openInspector(requestId));

  return {
    element,
    render(reply) {
      content.innerHTML = renderMarkdown(reply.content); // escaped by the renderer
      if (reply.ttftMs !== null) stats.textContent = `TTFT ${duration(reply.ttftMs)} · writing…`;
      if (reply.toolCalls.length) calls.replaceChildren(...reply.toolCalls.filter(Boolean).map(chatToolCard));
    },
    /** `reply` is null when Stop came before the answer started. */
    finish(reply) {
      element.dataset.streaming = 'false';
      element.removeAttribute('aria-busy');
      stats.textContent = reply ? statsLine(reply) : 'Stopped before the answer started.';
      requestId = reply && reply.requestId;
      inspect.disabled = !requestId;
      if (reply && !reply.stopped) pendingCalls = [...calls.children].map(askResult);
    },
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

function chatToolCard(call) {
  const card = toolCard(call);
  card.dataset.testid = 'tool-call-card';
  return card;
}

/** Adds a result field to a finished tool-call card; its value goes back with the next Send. */
function askResult(card) {
  const id = `tool-result-${++resultFields}`;
  const result = h('textarea', { id, rows: 2, class: 'mono', placeholder: 'The result, sent back with the next Send' });
  card.append(h('label', { for: id, text: `Result of ${card.dataset.name}` }), result);
  return { id: card.dataset.callId, result };
}

// -- images ----------------------------------------------------------------------------------

function updateAttach() {
  const model = select.value;
  const ok = Boolean(model) && acceptsImages(model);
  attachInput.disabled = !ok;
  attachReason.textContent = ok ? '' : model ? `${model} takes text only.` : 'No model selected.';
  if (!ok && attachments.length) {
    attachments = [];
    showAttachments();
  }
}

async function attach() {
  const files = [...attachInput.files];
  attachInput.value = '';
  for (const file of files) {
    if (file.size > MAX_IMAGE_BYTES) {
      showError(errorBox, `${file.name} is larger than 10 MB.`);
      continue;
    }
    try {
      attachments.push(await dataURL(file));
    } catch (error) {
      showError(errorBox, `Could not read ${file.name}: ${error.message}`);
    }
  }
  showAttachments();
}

function dataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showAttachments() {
  attachmentList.replaceChildren(
    ...attachments.map((url, index) =>
      h(
        'li',
        {},
        h('img', { src: url, alt: `Image ${index + 1}` }),
        h('button', {
          type: 'button',
          'aria-label': `Remove image ${index + 1}`,
          text: '×',
          onclick: () => {
            attachments.splice(index, 1);
            showAttachments();
          },
        }),
      ),
    ),
  );
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

/** Downloads the conversation as the chat request that would continue it. */
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
