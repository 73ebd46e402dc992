// The Requests tab: the recent requests (GET /v1/requests), each opening the inspector.

import { getJSON } from './api.js';
import { byTestId, h } from './dom.js';
import { count, moment, usd } from './format.js';
import { openInspector } from './inspector.js';

const list = byTestId('requests-list');

export function initRequests() {
  byTestId('requests-refresh').addEventListener('click', refreshRequests);
}

export async function refreshRequests() {
  try {
    const { data } = await getJSON('/v1/requests?limit=50');
    list.replaceChildren(
      ...(data.length
        ? data.map(row)
        : [h('li', { class: 'empty-hint', text: 'No requests yet. Send one from Chat or Compare.' })]),
    );
  } catch (error) {
    list.replaceChildren(h('li', { class: 'error-box', text: `Could not list the requests: ${error.message}` }));
  }
}

function row(record) {
  const failed = record.status >= 400;
  const tokens =
    record.prompt_tokens || record.completion_tokens
      ? `${count(record.prompt_tokens)} → ${count(record.completion_tokens)}`
      : '—';
  const button = h(
    'button',
    { type: 'button', 'data-testid': 'request-row', 'aria-label': `Inspect request ${record.id}` },
    h('span', { class: 'cell dim', text: moment(record.created_at) }),
    h('span', { class: 'cell id wide-only', text: record.id }),
    h('span', { class: 'cell', text: record.model || '—' }),
    h(
      'span',
      { class: 'cell' },
      h('span', { class: `badge ${failed ? 'error' : 'ok'}`, text: String(record.status) }),
      record.cache === 'hit' ? h('span', { class: 'badge', text: 'cached' }) : null,
    ),
    h('span', { class: 'cell dim wide-only', title: 'prompt → completion tokens', text: tokens }),
    h('span', { class: 'cell dim', text: usd(record.cost) }),
  );
  button.addEventListener('click', () => openInspector(record.id));
  return h('li', {}, button);
}
