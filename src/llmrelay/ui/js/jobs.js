// The Jobs tab: submit a structured-output job, follow its progress (WebSocket, else SSE,
// else polling), show its output as a JSON tree, and list the recent jobs.

import { ApiError, getJSON, postJSON, readEvents, request, sleep, socketURL } from './api.js';
import { byTestId, h, showError } from './dom.js';
import { moment } from './format.js';
import { openInspector } from './inspector.js';
import { jsonTree } from './jsontree.js';
import { fillModelSelect } from './models.js';
import { PRESETS } from './presets.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

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
let watcher = null; // how it is being followed: {stopped, socket, controller}

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
  schemaError.textContent = problem;
  schemaError.hidden = !problem;
  schema.setAttribute('aria-invalid', String(Boolean(problem)));
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
  const name = preset.value === 'custom' ? 'output' : preset.value;
  const body = {
    model: model.value,
    messages: [{ role: 'user', content: prompt.value }],
    response_format: { type: 'json_schema', json_schema: { name, schema: parsed, strict: true } },
    metadata: { source: 'playground' },
  };
  submitButton.disabled = true;
  try {
    const job = await postJSON('/v1/jobs', body);
    show(job);
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
  stopWatching();
  result.replaceChildren();
  update(job);
  markSelected();
  if (!TERMINAL.has(job.status)) follow(job.id);
  else channel.textContent = 'none: the job has ended';
}

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
  stage.textContent =
    job.status === 'failed' && job.error ? `Failed: ${job.error.message}` : `${job.message}${attempts}`;
  // The run's record is written when it ends.
  inspectButton.disabled = !job.request_id || !TERMINAL.has(job.status);
  cancelButton.disabled = TERMINAL.has(job.status);
  if (TERMINAL.has(job.status)) showResult(job);
  const row = list.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
  if (row) row.replaceWith(jobRow(job));
}

function showResult(job) {
  if (job.status === 'completed') {
    result.replaceChildren(h('h3', { text: 'Output' }), jsonTree(job.output));
  } else if (job.status === 'failed') {
    result.replaceChildren(h('p', { class: 'error-box', text: job.error ? job.error.message : 'The job failed.' }));
  } else {
    result.replaceChildren(h('p', { class: 'hint', text: 'The job was cancelled.' }));
  }
}

async function cancel() {
  if (!shown) return;
  cancelButton.disabled = true;
  try {
    update(await postJSON(`/v1/jobs/${encodeURIComponent(shown.id)}/cancel`));
  } catch (error) {
    stage.textContent = `Could not cancel: ${error.message}`;
  }
}

// -- following a job: WebSocket, else SSE, else polling --------------------------------------

/** Follows job `id` through the first channel that works, until the job ends. */
function follow(id) {
  const session = {
    stopped: false,
    socket: null,
    controller: new AbortController(),
    // Updates from a channel that was stopped (another job was opened) are dropped.
    update: (job) => session.stopped || update(job),
  };
  watcher = session;
  (async () => {
    for (const via of [viaSocket, viaEvents, viaPolling]) {
      try {
        if (await via(id, session)) {
          refreshJobs();
          return;
        }
      } catch (error) {
        if (session.stopped) return;
        // A refusal (no such job, a bad key) is final; a broken channel hands over.
        if (error instanceof ApiError && error.status >= 400) {
          stage.textContent = `Lost the job's updates: ${error.message}`;
          return;
        }
      }
    }
    if (!session.stopped) stage.textContent = "Lost the job's updates: the gateway cannot be reached.";
  })();
}

function stopWatching() {
  if (!watcher) return;
  watcher.stopped = true;
  watcher.controller.abort();
  if (watcher.socket) watcher.socket.close();
  watcher = null;
}

/** Resolves true once the job has ended; rejects when the socket fails or closes early. */
function viaSocket(id, session) {
  channel.textContent = 'push · WebSocket (connecting)';
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(socketURL(`/v1/jobs/${encodeURIComponent(id)}/ws`));
    session.socket = socket;
    let ended = false;
    socket.addEventListener('open', () => (channel.textContent = 'push · WebSocket'));
    socket.addEventListener('message', (event) => {
      const job = JSON.parse(event.data);
      session.update(job);
      ended = TERMINAL.has(job.status);
    });
    socket.addEventListener('close', (event) => {
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
  channel.textContent = 'push · SSE';
  for await (const job of readEvents(response)) {
    session.update(job);
    if (TERMINAL.has(job.status)) return true;
  }
  return false;
}

/** Polling, as often as the job's poll_after_ms says. */
async function viaPolling(id, session) {
  channel.textContent = 'polling';
  for (;;) {
    const job = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`, { signal: session.controller.signal });
    session.update(job);
    if (TERMINAL.has(job.status)) return true;
    await sleep(job.poll_after_ms || 1000);
    if (session.stopped) return false;
  }
}

// -- the recent jobs -------------------------------------------------------------------------

export async function refreshJobs() {
  try {
    const { data } = await getJSON('/v1/jobs?limit=20');
    list.replaceChildren(
      ...(data.length ? data.map(jobRow) : [h('li', { class: 'empty-hint', text: 'No jobs yet.' })]),
    );
    markSelected();
  } catch (error) {
    list.replaceChildren(h('li', { class: 'error-box', text: `Could not list the jobs: ${error.message}` }));
  }
}

function jobRow(job) {
  const button = h(
    'button',
    {
      type: 'button',
      'data-testid': 'job-row',
      'aria-label': `Job ${job.id}, ${job.status}`,
      'aria-current': String(Boolean(shown) && shown.id === job.id),
    },
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

async function open(id) {
  try {
    show(await getJSON(`/v1/jobs/${encodeURIComponent(id)}`));
    jobView.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  } catch (error) {
    showError(formError, `Could not open the job: ${error.message}`);
  }
}

function markSelected() {
  for (const item of list.children) {
    const button = item.querySelector('button');
    if (button) button.setAttribute('aria-current', String(Boolean(shown) && item.dataset.jobId === shown.id));
  }
}
