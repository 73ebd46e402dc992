// The Jobs tab: submit a structured-output job, follow its progress (job-follow.js), show
// its output as a JSON tree with its usage and attempts, and list the recent jobs.

import { getJSON, postJSON } from './api.js';
import { byTestId, h, markField, reducedMotion, showError } from './dom.js';
import { count, moment } from './format.js';
import { openInspector } from './inspector.js';
import { followJob, TERMINAL } from './job-follow.js';
import { jsonTree } from './jsontree.js';
import { fillModelSelect } from './models.js';
import { readParams } from './params.js';
import { PRESETS } from './presets.js';
import { rowLoader } from './rows.js';

const PARAMS = ['max_tokens', 'temperature'];

const form = document.getElementById('job-form');
const prompt = byTestId('job-prompt');
const model = byTestId('job-model');
const preset = byTestId('job-preset');
const schema = byTestId('job-schema');
const schemaError = document.getElementById('job-schema-error');
const submitButton = byTestId('job-submit');
const formError = document.getElementById('job-error');
const jobId = document.getElementById('job-id');
const jobEmpty = document.getElementById('job-empty');
const jobView = document.getElementById('job-view');
const statusBadge = document.getElementById('job-status');
const channel = byTestId('job-channel');
const progress = byTestId('job-progress');
const progressBar = document.getElementById('job-progress-bar');
const stage = byTestId('job-stage');
const inspectButton = byTestId('job-inspect');
const cancelButton = document.getElementById('job-cancel');
const result = byTestId('job-result');
const list = byTestId('jobs-list');

let shown = null; // the job on display
let stopFollowing = () => {};
// Bumped whenever another job is asked for or put on display: an answer about the one
// before (a late open, or cancel) then no longer draws on the panel.
let generation = 0;

export const refreshJobs = rowLoader(list, {
  load: async () => (await getJSON('/v1/jobs?limit=20')).data,
  row: jobRow,
  empty: 'No jobs yet.',
  what: 'the jobs',
  after: markSelected,
});

export function initJobs() {
  preset.replaceChildren(
    ...Object.entries(PRESETS).map(([value, { label }]) => h('option', { value, text: label })),
    h('option', { value: 'custom', text: 'Custom' }),
  );
  preset.addEventListener('change', () => usePreset(preset.value));
  schema.addEventListener('input', () => {
    readSchema();
    const chosen = PRESETS[preset.value];
    if (chosen && schema.value !== pretty(chosen.schema)) preset.value = 'custom';
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  inspectButton.addEventListener('click', () => shown?.request_id && openInspector(shown.request_id));
  cancelButton.addEventListener('click', cancel);
  byTestId('jobs-refresh').addEventListener('click', refreshJobs);
  usePreset(Object.keys(PRESETS)[0]);
}

export function setJobModels() {
  fillModelSelect(model);
}

// -- the form --------------------------------------------------------------------------------

function usePreset(name) {
  const chosen = PRESETS[name];
  if (!chosen) return;
  preset.value = name;
  schema.value = pretty(chosen.schema);
  // The prompt follows the preset unless the user wrote their own.
  const presetPrompts = Object.values(PRESETS).map((p) => p.prompt);
  if (!prompt.value.trim() || presetPrompts.includes(prompt.value)) prompt.value = chosen.prompt;
  readSchema();
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** The schema in the editor, or null (with the reason shown) when it is not a JSON object. */
function readSchema() {
  let parsed = null;
  let problem = '';
  try {
    parsed = JSON.parse(schema.value);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      problem = 'The schema must be a JSON object, such as {"type": "object", "properties": {...}}.';
      parsed = null;
    }
  } catch (error) {
    problem = `Not valid JSON: ${error.message}`;
  }
  markField(schema, schemaError, problem);
  return parsed;
}

async function submit() {
  showError(formError, '');
  const parsed = readSchema();
  if (!parsed) {
    schema.focus();
    return;
  }
  if (!prompt.value.trim()) {
    showError(formError, 'Write a prompt first.');
    prompt.focus();
    return;
  }
  let params;
  try {
    params = readParams(PARAMS, (name) => byTestId(`job-param-${name}`));
  } catch (error) {
    showError(formError, error.message);
    return;
  }
  const name = preset.value === 'custom' ? 'output' : preset.value;
  const body = {
    model: model.value,
    messages: [{ role: 'user', content: prompt.value }],
    ...params,
    response_format: { type: 'json_schema', json_schema: { name, schema: parsed, strict: true } },
    metadata: { source: 'playground' },
  };
  submitButton.disabled = true;
  const ticket = ++generation;
  try {
    const job = await postJSON('/v1/jobs', body);
    if (ticket === generation) show(job);
    refreshJobs();
  } catch (error) {
    showError(formError, error.message);
  } finally {
    submitButton.disabled = false;
  }
}

// -- one job ---------------------------------------------------------------------------------

/** Displays `job`, and follows it until it ends. */
function show(job) {
  generation++;
  stopFollowing();
  result.replaceChildren();
  update(job);
  markSelected();
  if (TERMINAL.has(job.status)) {
    channel.textContent = 'none: the job has ended';
    return;
  }
  stopFollowing = followJob(job.id, {
    onUpdate: (latest) => {
      update(latest);
      if (TERMINAL.has(latest.status)) refreshJobs();
    },
    onChannel: (text) => (channel.textContent = text),
    onLost: (message) => setStage(`Lost the job's updates: ${message}`),
  });
}

/** Shows the state of the job on display, and updates its row. */
function update(job) {
  shown = job;
  jobEmpty.hidden = true;
  jobView.hidden = false;
  jobId.textContent = job.id;
  statusBadge.textContent = job.status.replace('_', ' ');
  statusBadge.className = `badge ${job.status}`;
  progress.setAttribute('aria-valuenow', String(job.progress));
  progress.className = `progress ${job.status}`;
  progressBar.style.width = `${job.progress}%`;
  const attempts = job.attempts > 1 ? ` (attempt ${job.attempts})` : '';
  // The error is said here only (this line is announced), not again under the result.
  setStage(job.status === 'failed' && job.error ? `Failed: ${job.error.message}` : `${job.message}${attempts}`);
  stage.classList.toggle('failed', job.status === 'failed');
  // The run's record is written when it ends.
  inspectButton.disabled = !job.request_id || !TERMINAL.has(job.status);
  cancelButton.disabled = TERMINAL.has(job.status);
  if (TERMINAL.has(job.status)) showResult(job);
  updateRow(job);
}

/** Sets the stage line, which is live: unchanged text is not set again (nor announced). */
function setStage(text) {
  if (stage.textContent !== text) stage.textContent = text;
}

function updateRow(job) {
  const row = list.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
  if (row) row.replaceWith(jobRow(job));
}

function showResult(job) {
  const output =
    job.status === 'completed'
      ? [h('h3', { text: 'Output' }), jsonTree(job.output)]
      : job.status === 'cancelled'
        ? [h('p', { class: 'hint', text: 'The job was cancelled.' })]
        : [];
  result.replaceChildren(...output, ...usageOf(job), ...historyOf(job));
}

/** The tokens the job used, over all its attempts. */
function usageOf(job) {
  const usage = job.usage;
  if (!usage) return [];
  const facts = [
    ['Prompt', usage.prompt_tokens],
    ['Completion', usage.completion_tokens],
    ['Total', usage.total_tokens],
  ].filter(([, value]) => value !== null && value !== undefined);
  return [
    h('h3', { text: 'Usage' }),
    h(
      'dl',
      { class: 'facts', 'data-testid': 'job-usage' },
      facts.flatMap(([term, value]) => [h('dt', { text: `${term} tokens` }), h('dd', { text: count(value) })]),
    ),
  ];
}

const OUTCOMES = {
  answered: 'answered',
  valid: 'valid JSON for the schema',
  repaired: 'repaired into valid JSON',
  invalid: 'not valid for the schema; asked again',
  worker_lost: 'its worker was lost; the job was run again',
};

/** What became of each attempt: valid, repaired, invalid (with why), or a lost worker. */
function historyOf(job) {
  if (!job.history?.length) return [];
  return [
    h('h3', { text: 'Attempts' }),
    h(
      'ol',
      { class: 'job-history', 'data-testid': 'job-history' },
      job.history.map((entry) =>
        h(
          'li',
          {},
          h('strong', { text: entry.attempt ? `Attempt ${entry.attempt}: ` : `Run ${(entry.run ?? 0) + 1}: ` }),
          OUTCOMES[entry.outcome] || entry.outcome,
          entry.errors?.length
            ? h('ul', {}, entry.errors.map((error) => h('li', { class: 'hint', text: error })))
            : null,
        ),
      ),
    ),
  ];
}

async function cancel() {
  if (!shown) return;
  const ticket = generation;
  cancelButton.disabled = true;
  try {
    const job = await postJSON(`/v1/jobs/${encodeURIComponent(shown.id)}/cancel`);
    if (ticket === generation) update(job);
    else updateRow(job);
  } catch (error) {
    if (ticket === generation) setStage(`Could not cancel: ${error.message}`);
  }
}

async function open(id) {
  const ticket = ++generation;
  try {
    const job = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
    if (ticket !== generation) return; // another job was asked for since
    show(job);
    jobView.scrollIntoView({ block: 'nearest', behavior: reducedMotion() ? 'auto' : 'smooth' });
  } catch (error) {
    if (ticket === generation) showError(formError, `Could not open the job: ${error.message}`);
  }
}

// -- the recent jobs -------------------------------------------------------------------------

/** A job's row: a button (its name is its cells' text), opening the job. */
function jobRow(job) {
  const button = h(
    'button',
    { type: 'button', 'data-testid': 'job-row', 'aria-current': String(Boolean(shown) && shown.id === job.id) },
    h('span', { class: 'cell' }, h('span', { class: `badge ${job.status}`, text: job.status.replace('_', ' ') })),
    h('span', { class: 'cell id wide-only', text: job.id }),
    h('span', { class: 'cell', text: job.model }),
    h('span', { class: 'cell dim', text: moment(job.created_at) }),
    h('span', { class: 'cell dim wide-only', text: TERMINAL.has(job.status) ? job.message : `${job.progress}%` }),
    h('span', { class: 'cell dim wide-only', text: `${job.attempts} attempt${job.attempts === 1 ? '' : 's'}` }),
  );
  button.addEventListener('click', () => open(job.id));
  return h('li', { 'data-job-id': job.id }, button);
}

function markSelected() {
  for (const item of list.children) {
    const button = item.querySelector('button');
    if (button) button.setAttribute('aria-current', String(Boolean(shown) && item.dataset.jobId === shown.id));
  }
}
