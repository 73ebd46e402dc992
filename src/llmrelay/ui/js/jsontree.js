// A collapsible JSON tree: objects and arrays are <details>/<summary> (keyboard usable as
// they are), their children built the first time they open. All text goes in as text.

import { h } from './dom.js';

/** The tree of `value`, its root with class "json-tree"; levels above `openDepth` start open. */
export function jsonTree(value, { openDepth = 2 } = {}) {
  return h('div', { class: 'json-tree' }, node(null, value, 0, openDepth));
}

function node(key, value, depth, openDepth) {
  const label = key === null ? null : h('span', { class: 'json-key', text: `${JSON.stringify(key)}: ` });
  if (value === null || typeof value !== 'object') {
    return h('div', { class: 'json-leaf' }, label, leaf(value));
  }
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return h('div', { class: 'json-leaf' }, label, `${open}${close}`);
  const noun = Array.isArray(value) ? 'item' : 'key';
  const summary = h(
    'summary',
    {},
    label,
    open,
    h('span', { class: 'json-count', text: ` ${entries.length} ${noun}${entries.length === 1 ? '' : 's'} ` }),
    close,
  );
  const details = h('details', { open: depth < openDepth }, summary);
  const fill = () => {
    if (details.childElementCount > 1) return;
    details.append(
      h(
        'div',
        { class: 'json-children' },
        entries.map(([k, v]) => node(k, v, depth + 1, openDepth)),
      ),
    );
  };
  if (details.open) fill();
  else details.addEventListener('toggle', fill);
  return details;
}

function leaf(value) {
  const type = value === null ? 'null' : typeof value;
  const text = type === 'string' ? JSON.stringify(value) : String(value);
  return h('span', { class: `json-${type}`, text });
}
