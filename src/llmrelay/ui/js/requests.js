// The Requests tab: the recent requests (GET /v1/requests), each opening the inspector.

import { getJSON } from './api.js';
import { byTestId, h } from './dom.js';
import { moment, tokenCounts, usd } from './format.js';
import { openInspector } from './inspector.js';
import { rowLoader } from './rows.js';

export const refreshRequests = rowLoader(byTestId('requests-list'), {
  load: async () => (await getJSON('/v1/requests?limit=50')).data,
  row,
  empty: 'No requests yet. Send one from Chat or Compare.',
  what: 'the requests',
});

export function initRequests() {
  byTestId('requests-refresh').addEventListener('click', refreshRequests);
}

/** A request's row: a button (its name is its cells' text), opening the inspector. */
function row(record) {
  const failed = record.status >= 400;
  const button = h(
    'button',
    { type: 'button', 'data-testid': 'request-row' },
    h('span', { class: 'cell dim', text: moment(record.created_at) }),
    h('span', { class: 'cell id wide-only', text: record.id }),
    h('span', { class: 'cell', text: record.model || '—' }),
    h(
      'span',
      { class: 'cell' },
      h('span', { class: `badge ${failed ? 'error' : 'ok'}`, text: String(record.status) }),
      record.cache === 'hit' ? h('span', { class: 'badge', text: 'cached' }) : null,
    ),
    h('span', { class: 'cell dim wide-only', title: 'prompt → completion tokens', text: tokenCounts(record, '—') }),
    h('span', { class: 'cell dim', text: usd(record.cost) }),
  );
  button.addEventListener('click', () => openInspector(record.id));
  return h('li', {}, button);
}
