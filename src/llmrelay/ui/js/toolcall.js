// A tool call as a card: the function's name, its id, and its arguments pretty-printed.

import { h } from './dom.js';

/** The card of `call` ({id, function: {name, arguments}}), whose arguments may still be
 * streaming in. */
export function toolCard(call) {
  let args = call.function.arguments;
  try {
    args = JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    // Still streaming in, or not JSON: shown as it is.
  }
  return h(
    'div',
    { class: 'tool-card', 'data-testid': 'tool-call-card', 'data-call-id': call.id, 'data-name': call.function.name },
    h(
      'div',
      { class: 'tool-card-head' },
      h('span', { class: 'hint', text: 'Tool call' }),
      h('span', { class: 'tool-card-name', text: call.function.name }),
      h('code', { class: 'hint', text: call.id }),
    ),
    h('pre', { class: 'wrap', text: args || '{}' }),
  );
}
