// Small DOM helpers shared by every view.

/** The element with this data-testid (the ids the tests and the views agree on). */
export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/**
 * A new element. `attrs` are attributes, except: `class`; `text` (its text content);
 * `on<event>` functions, added as listeners; `false`/`null`/`undefined` values, skipped;
 * `true`, an empty (boolean) attribute. Children are nodes or strings (as text).
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') element.className = value;
    else if (name === 'text') element.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** Shows `message` in an error box (hidden when `message` is empty). */
export function showError(box, message) {
  box.textContent = message || '';
  box.hidden = !message;
}

/** Marks a form field invalid, with `message` in its error element (valid when empty). */
export function markField(field, box, message) {
  box.textContent = message || '';
  box.hidden = !message;
  field.setAttribute('aria-invalid', String(Boolean(message)));
}

/** Enter in `textarea` calls `send`; Shift+Enter adds a line, and an IME composing keeps
 * its Enter. */
export function sendOnEnter(textarea, send) {
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
}

/** Starts a download of `text` as a file, through a blob URL. */
export function download(filename, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  // The download reads the blob after click() returns, how long after is up to the
  // browser: revoking at once can cancel it.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

const lessMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

/** Whether the user asked for less motion (no smooth scrolling, no typing effect). */
export function reducedMotion() {
  return lessMotion.matches;
}

/** Whether the page is scrolled (nearly) to its bottom, where new text should keep it. */
export function nearPageBottom(slack = 120) {
  const { scrollTop, scrollHeight, clientHeight } = document.scrollingElement;
  return scrollHeight - scrollTop - clientHeight < slack;
}
