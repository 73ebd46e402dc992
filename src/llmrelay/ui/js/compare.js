// The Compare tab: one prompt streamed from two to four models at once, side by side, each
// with its time to first token, total time, tokens and cost.

import { requestRecord } from './api.js';
import { byTestId, h, showError } from './dom.js';
import { count, duration, usd } from './format.js';
import { enableCodeCopy, renderMarkdown } from './markdown.js';
import { fillModelSelect, modelIds } from './models.js';
import { streamChat } from './stream.js';
import { toolCard } from './toolcall.js';

const MIN_COLUMNS = 2;
const MAX_COLUMNS = 4;

const grid = document.getElementById('compare-columns');
const input = byTestId('compare-input');
const addButton = byTestId('compare-add');
const runButton = byTestId('compare-run');
const stopButton = document.getElementById('compare-stop');
const errorBox = document.getElementById('compare-error');

const columns = [];
let controller = null;
let made = 0; // columns made so far, for unique ids

export function initCompare() {
  document.getElementById('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      run();
    }
  });
  addButton.addEventListener('click', () => addColumn());
  stopButton.addEventListener('click', () => controller?.abort());
  enableCodeCopy(grid);
  for (let n = 0; n < MIN_COLUMNS; n++) addColumn();
}

/** Called when the model list is (re)loaded: each column keeps its model, or takes the
 * n-th model, so that a fresh page compares different models. */
export function setCompareModels() {
  const ids = modelIds();
  columns.forEach((column, n) => fillModelSelect(column.select, ids[n % Math.max(ids.length, 1)]));
  columns.forEach(showModel);
}

function addColumn() {
  if (columns.length >= MAX_COLUMNS) return;
  const id = `compare-model-${++made}`;
  const select = h('select', { id, 'data-testid': 'compare-model' });
  const remove = h('button', { type: 'button', class: 'button ghost icon', text: '×' });
  const column = {
    select,
    remove,
    model: h('p', { class: 'column-model', 'data-testid': 'column-model' }),
    output: h('div', { class: 'column-output markdown', 'data-testid': 'column-output' }),
    ttft: h('dd', { 'data-testid': 'stat-ttft', text: '—' }),
    total: h('dd', { 'data-testid': 'stat-total', text: '—' }),
    tokens: h('dd', { 'data-testid': 'stat-tokens', title: 'prompt → completion tokens', text: '—' }),
    cost: h('dd', { 'data-testid': 'stat-cost', text: '—' }),
  };
  const label = h('label', { for: id });
  const stat = (term, value) => h('div', {}, h('dt', { text: term }), value);
  column.element = h(
    'article',
    { class: 'card compare-column', 'data-testid': 'compare-column' },
    h('div', { class: 'column-head' }, h('div', { class: 'field' }, label, select), remove),
    column.model,
    column.output,
    h(
      'dl',
      { class: 'column-stats' },
      stat('First token', column.ttft),
      stat('Total', column.total),
      stat('Tokens', column.tokens),
      stat('Cost', column.cost),
    ),
  );
  select.addEventListener('change', () => showModel(column));
  remove.addEventListener('click', () => {
    columns.splice(columns.indexOf(column), 1);
    column.element.remove();
    renumber();
    addButton.focus();
  });
  columns.push(column);
  grid.append(column.element);
  fillModelSelect(select, modelIds()[(columns.length - 1) % Math.max(modelIds().length, 1)]);
  showModel(column);
  renumber();
}

function showModel(column) {
  column.model.textContent = column.select.value || 'No model';
}

/** Labels the columns by position, and allows adding and removing within 2 to 4. */
function renumber() {
  columns.forEach((column, n) => {
    column.element.querySelector('label').textContent = `Model ${n + 1}`;
    column.remove.setAttribute('aria-label', `Remove model ${n + 1}`);
    column.remove.hidden = columns.length <= MIN_COLUMNS;
    column.remove.disabled = Boolean(controller);
  });
  addButton.disabled = columns.length >= MAX_COLUMNS || Boolean(controller);
}

async function run() {
  if (controller) return;
  const prompt = input.value.trim();
  if (!prompt) {
    showError(errorBox, 'Type a prompt first.');
    input.focus();
    return;
  }
  showError(errorBox, '');
  controller = new AbortController();
  runButton.disabled = true;
  stopButton.disabled = false;
  renumber();
  await Promise.all(columns.map((column) => runColumn(column, prompt, controller.signal)));
  controller = null;
  runButton.disabled = false;
  stopButton.disabled = true;
  renumber();
}

async function runColumn(column, prompt, signal) {
  const model = column.select.value;
  const { element, output } = column;
  element.dataset.done = 'false';
  output.dataset.streaming = 'true';
  output.replaceChildren();
  column.model.textContent = model;
  for (const cell of [column.ttft, column.total, column.tokens, column.cost]) cell.textContent = '…';

  let frame = 0;
  const paint = (reply) => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      output.innerHTML = renderMarkdown(reply.content); // escaped by the renderer
    });
  };
  let reply = null;
  try {
    reply = await streamChat({ model, messages: [{ role: 'user', content: prompt }] }, { signal, onUpdate: paint });
    cancelAnimationFrame(frame);
    output.innerHTML = renderMarkdown(reply.content);
    output.append(...reply.toolCalls.filter(Boolean).map(toolCard));
    if (reply.stopped) output.append(h('p', { class: 'hint', text: 'Stopped.' }));
    if (reply.error) output.append(h('p', { class: 'error-box', text: reply.error.message }));
  } catch (error) {
    output.replaceChildren(
      h(
        'p',
        error.name === 'AbortError'
          ? { class: 'hint', text: 'Stopped before the answer started.' }
          : { class: 'error-box', text: error.message },
      ),
    );
  }
  output.dataset.streaming = 'false';
  column.ttft.textContent = reply ? duration(reply.ttftMs) : 'n/a';
  column.total.textContent = reply ? duration(reply.totalMs) : 'n/a';
  column.tokens.textContent =
    reply && reply.usage ? `${count(reply.usage.prompt_tokens)} → ${count(reply.usage.completion_tokens)}` : 'n/a';
  column.cost.textContent = reply && reply.requestId ? await cost(reply.requestId) : 'n/a';
  element.dataset.done = 'true';
}

/** The recorded cost of a request, once the gateway has written its record. */
async function cost(requestId) {
  try {
    return usd((await requestRecord(requestId)).cost_usd);
  } catch {
    return 'n/a';
  }
}
