// The request inspector: a drawer showing one request's record from /v1/requests/{id}:
// what the gateway injected, what went upstream and came back, tokens, cost and timings.

import { requestRecord } from './api.js';
import { byTestId, h } from './dom.js';
import { count, duration, moment, usd } from './format.js';
import { highlight } from './highlight.js';

const drawer = byTestId('inspector');
const title = document.getElementById('inspector-id');
const status = document.getElementById('inspector-status');
const summary = document.getElementById('inspector-summary');
const sections = {
  waterfall: byTestId('inspector-waterfall'),
  tokens: byTestId('inspector-tokens'),
  cost: byTestId('inspector-cost'),
  system: byTestId('inspector-system'),
  request: byTestId('inspector-upstream-request'),
  response: byTestId('inspector-upstream-response'),
  client: document.getElementById('inspector-client'),
};
const NOT_KEPT = "Content was not kept: the gateway's log_content setting is off.";

let shown = null; // the id being shown, so that a late answer for another is dropped

export function initInspector() {
  byTestId('inspector-close').addEventListener('click', () => drawer.close());
  // The drawer's content fills it, so a click on the dialog itself is on its backdrop.
  drawer.addEventListener('click', (event) => event.target === drawer && drawer.close());
}

/** Opens the drawer on request `id` and loads its record. */
export async function openInspector(id) {
  shown = id;
  title.textContent = id;
  status.textContent = 'Loading…';
  summary.replaceChildren();
  for (const section of Object.values(sections)) section.replaceChildren();
  if (!drawer.open) drawer.showModal();
  try {
    const record = await requestRecord(id);
    if (shown !== id) return;
    status.textContent = '';
    render(record);
  } catch (error) {
    if (shown !== id) return;
    status.textContent =
      error.status === 404 ? `No record of request ${id}: it may be older than the retention time.` : error.message;
  }
}

function render(record) {
  facts(summary, [
    ['Model', record.model],
    ['Deployment', record.deployment],
    ['Status', record.status],
    ['Error', record.error_type],
    ['Attempts', record.attempts],
    ['Cache', record.cache],
    ['Key', record.key_id],
    ['Endpoint', record.method && `${record.method} ${record.path}`],
    ['When', moment(record.created_at)],
  ]);
  sections.waterfall.replaceChildren(...waterfall(record.timings_ms || {}));
  renderTokens(record.usage);
  renderCost(record);
  if (!record.content_kept) {
    for (const name of ['system', 'request', 'response', 'client']) {
      sections[name].replaceChildren(h('p', { class: 'notice', text: NOT_KEPT }));
    }
    return;
  }
  renderSystem(record);
  renderUpstream(record.upstream || []);
  sections.client.replaceChildren(code(record.client_request));
}

function renderTokens(usage) {
  if (!usage) {
    sections.tokens.replaceChildren(h('p', { class: 'hint', text: 'No tokens were counted for this request.' }));
    return;
  }
  const how = usage.estimated
    ? `estimated (${usage.counted_by}): the upstream reported none, so they were counted from the text's length`
    : 'reported by the model';
  const list = h('dl', { class: 'facts' });
  facts(list, [
    ['Prompt', count(usage.prompt_tokens)],
    ['Completion', count(usage.completion_tokens)],
    ['Cached', count(usage.cached_tokens)],
    ['Total', count(usage.total_tokens)],
    ['Counted', how],
  ]);
  sections.tokens.replaceChildren(list);
}

function renderCost(record) {
  const list = h('dl', { class: 'facts' });
  facts(list, [
    ['Cost', usd(record.cost_usd)],
    ['Saved by the cache', record.saved_usd ? usd(record.saved_usd) : null],
  ]);
  sections.cost.replaceChildren(list);
}

function renderSystem(record) {
  const injected = (record.injected || []).filter(Boolean);
  const own = (record.client_request?.messages || []).filter((m) => m.role === 'system' || m.role === 'developer');
  const parts = [];
  if (injected.length) {
    parts.push(
      h('p', {
        class: 'hint',
        text: "Injected by the gateway (the key's system prompt), ahead of the client's messages:",
      }),
    );
    parts.push(...injected.map((text) => h('pre', { class: 'wrap', text })));
  } else {
    parts.push(h('p', { class: 'hint', text: 'The gateway injected no system prompt.' }));
  }
  if (own.length) {
    parts.push(h('p', { class: 'hint', text: "The client's own system prompt:" }));
    parts.push(...own.map((message) => h('pre', { class: 'wrap', text: textOf(message.content) })));
  }
  sections.system.replaceChildren(...parts);
}

function renderUpstream(calls) {
  if (!calls.length) {
    const none = 'No upstream call: the model runs inside the gateway, or the cache answered.';
    sections.request.replaceChildren(h('p', { class: 'hint', text: none }));
    sections.response.replaceChildren(h('p', { class: 'hint', text: none }));
    return;
  }
  const attempt = (n) => (calls.length > 1 ? h('h4', { text: `Attempt ${n + 1} of ${calls.length}` }) : null);
  sections.request.replaceChildren(
    ...calls.map((call, n) => {
      const headers = h('dl', { class: 'facts' });
      facts(headers, Object.entries(call.headers || {}));
      return h(
        'div',
        { class: 'inspector-call' },
        attempt(n),
        h('p', {}, h('strong', { text: 'POST ' }), h('code', { text: call.url })),
        call.deployment ? h('p', { class: 'hint', text: `Deployment ${call.deployment}` }) : null,
        headers,
        code(call.body),
      );
    }),
  );
  sections.response.replaceChildren(
    ...calls.map((call, n) =>
      h(
        'div',
        { class: 'inspector-call' },
        attempt(n),
        h('p', {}, h('strong', { text: 'Status ' }), String(call.status ?? 'none: no answer')),
        call.response_truncated
          ? h('p', { class: 'hint', text: 'Cut at the inspector size limit (inspector.max_kb).' })
          : null,
        code(call.response),
      ),
    ),
  );
}

/** A body as the inspector keeps it: JSON pretty-printed and highlighted, text as it is. */
function code(body) {
  const pre = h('pre', { class: 'wrap' });
  if (body === null || body === undefined || body === '') {
    pre.textContent = '(empty)';
  } else if (typeof body === 'string') {
    pre.textContent = body;
  } else {
    pre.innerHTML = highlight(JSON.stringify(body, null, 2), 'json'); // escaped by highlight
  }
  return pre;
}

function textOf(content) {
  if (typeof content === 'string') return content;
  return (content || []).map((part) => part.text || '').join('\n');
}

/** Fills a <dl> with [term, value] pairs, leaving out unknown values. */
function facts(list, pairs) {
  list.replaceChildren(
    ...pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== '')
      .flatMap(([term, value]) => [h('dt', { text: term }), h('dd', { text: String(value) })]),
  );
}

/**
 * The timing waterfall: each phase a bar from where it starts to where it ends, on the
 * scale of the whole request. `first_byte`, `first_token` and `total` are moments from the
 * start; `queue` and `connect` are durations.
 */
function waterfall(timings) {
  const total = timings.total;
  if (!total) return [h('p', { class: 'hint', text: 'No timings were recorded.' })];
  const queue = timings.queue || 0;
  const connect = timings.connect || 0;
  const firstByte = timings.first_byte;
  const firstToken = timings.first_token;
  const phases = [
    ['queue', 'Queue', 0, queue, 'Waiting for a free slot on a deployment'],
    ['connect', 'Connect', queue, queue + connect, 'Opening the connection to the upstream'],
  ];
  if (firstByte !== null && firstByte !== undefined) {
    phases.push(['wait', 'First byte', queue + connect, firstByte, 'Until the upstream sent its first byte']);
  }
  if (firstToken !== null && firstToken !== undefined) {
    phases.push([
      'token',
      'First token',
      firstByte ?? queue + connect,
      firstToken,
      'Until the first token of the answer',
    ]);
    phases.push(['stream', 'Rest', firstToken, total, 'The rest of the answer']);
  }
  phases.push(['total', 'Total', 0, total, 'The whole request, in the gateway']);
  const rows = phases.map(([kind, label, start, end, help]) => {
    const from = Math.min(Math.max(start, 0), total);
    const to = Math.min(Math.max(end, from), total);
    const bar = h('div', { class: `waterfall-bar bar-${kind}` });
    bar.style.left = `${(from / total) * 100}%`;
    bar.style.width = `${((to - from) / total) * 100}%`;
    return h(
      'div',
      { class: 'waterfall-row', title: help },
      h('span', { text: label }),
      h(
        'div',
        {
          class: 'waterfall-track',
          role: 'img',
          'aria-label': `${label}: ${duration(to - from)}, from ${duration(from)}`,
        },
        bar,
      ),
      h('span', { class: 'waterfall-value', text: duration(to - from) }),
    );
  });
  const notes = [
    firstByte !== null && firstByte !== undefined ? `first byte at ${duration(firstByte)}` : null,
    firstToken !== null && firstToken !== undefined ? `first token at ${duration(firstToken)}` : null,
    timings.upstream !== null && timings.upstream !== undefined ? `upstream ${duration(timings.upstream)}` : null,
    timings.overhead !== null && timings.overhead !== undefined
      ? `gateway overhead ${duration(timings.overhead)}`
      : null,
  ].filter(Boolean);
  return [...rows, h('p', { class: 'hint', text: notes.join(' · ') })];
}
