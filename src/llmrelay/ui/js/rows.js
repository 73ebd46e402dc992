// A list of rows loaded from the API (the recent jobs, the recent requests): a row per
// item, else a line saying there are none, or why they could not be listed.

import { h } from './dom.js';

/**
 * A function that (re)loads `list`: `load()` resolves to the items, `row(item)` makes each
 * one's <li>, `empty` says there are none, `what` names them in an error; `after()` runs
 * once the rows are drawn. Only the latest load draws: an earlier one answering late is
 * dropped, so that a stale list never replaces a newer one.
 */
export function rowLoader(list, { load, row, empty, what, after = () => {} }) {
  let latest = 0;
  return async function refresh() {
    const ticket = ++latest;
    try {
      const items = await load();
      if (ticket !== latest) return;
      list.replaceChildren(...(items.length ? items.map(row) : [h('li', { class: 'empty-hint', text: empty })]));
      after();
    } catch (error) {
      if (ticket !== latest) return;
      list.replaceChildren(h('li', { class: 'error-box', text: `Could not list ${what}: ${error.message}` }));
    }
  };
}
