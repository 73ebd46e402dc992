// The Compare tab: one prompt streamed from two to four models at once, side by side, each
// with its time to first token, total time, tokens and cost.

import { recordedCost } from './api.js';
import { byTestId, h, sendOnEnter, showError } from './dom.js';
import { duration, tokenCounts, usd } from './format.js';
import { enableCodeCopy, patchMarkdown } from './markdown.js';
import { fillModelSelect, modelIds } from './models.js';
import { streamChat } from './stream.js';
import { toolCard } from './toolcall.js';
import { typewriter } from './typing.js';

const MIN_COLUMNS = 2;
const MAX_COLUMNS = 4;

const grid = document.getElementById('compare-columns');
const input = byTestId('compare-input');
const addButton = byTestId('compare-add');
const runButton = byTestId('compare-run');
const stopButton = document.getElementById('compare-stop');
const errorBox = document.getElementById('compare-error');

const columns = [];
let controller = null; // the run streaming in, if any
let lookups = null; // the last run's cost look-ups, aborted when the next run starts
let made = 0; // columns made so far, for unique ids

export function initCompare() {
  document.getElementById('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  sendOnEnter(input, run);
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

/** Labels the columns by position, and allows adding and removing within 2 to 4, and
 * changing them, while no run streams. */
function renumber() {
  const running = Boolean(controller);
  columns.forEach((column, n) => {
    column.element.querySelector('label').textContent = `Model ${n + 1}`;
    column.remove.setAttribute('aria-label', `Remove model ${n + 1}`);
    column.remove.hidden = columns.length <= MIN_COLUMNS;
    column.remove.disabled = running;
    column.select.disabled = running;
  });
  addButton.disabled = columns.length >= MAX_COLUMNS || running;
  runButton.disabled = running;
  stopButton.disabled = !running;
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
  lookups?.abort(); // a late cost of the last run would land in this run's columns
  controller = new AbortController();
  lookups = new AbortController();
  const costs = lookups.signal;
  const running = [...columns];
  renumber();
  const replies = await Promise.all(running.map((column) => streamColumn(column, prompt, controller.signal)));
  // Run is usable again as soon as the answers are in; the costs follow.
  controller = null;
  renumber();
  running.forEach((column, n) => showCost(column, replies[n], costs));
}

/** Streams the prompt's answer into `column`; resolves to the reply (null when there was
 * none). */
async function streamColumn(column, prompt, signal) {
  const model = column.select.value;
  const { element, output } = column;
  element.dataset.done = 'false';
  output.dataset.streaming = 'true';
  output.setAttribute('aria-busy', 'true');
  output.replaceChildren();
  column.model.textContent = model;
  for (const cell of [column.ttft, column.total, column.tokens, column.cost]) cell.textContent = '…';

  const writer = typewriter((reply, text) => patchMarkdown(output, text));
  let reply = null;
  try {
    const body = { model, messages: [{ role: 'user', content: prompt }] };
    reply = await streamChat(body, { signal, onUpdate: writer.update });
    writer.finish(reply);
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
  output.setAttribute('aria-busy', 'false');
  column.ttft.textContent = reply ? duration(reply.ttftMs) : 'n/a';
  column.total.textContent = reply ? duration(reply.totalMs) : 'n/a';
  column.tokens.textContent = tokenCounts(reply?.usage);
  return reply;
}

/** Shows the recorded cost of the column's request, once the gateway has written it; then
 * the column is done. */
async function showCost(column, reply, signal) {
  let cost = null;
  try {
    if (reply?.requestId) cost = await recordedCost(reply.requestId, { signal });
  } catch {
    return; // aborted: a new run took the column over
  }
  column.cost.textContent = usd(cost);
  column.element.dataset.done = 'true';
}
