// A small, safe Markdown renderer for model output: headings, paragraphs, bold, italic,
// strikethrough, inline code, backslash escapes, fenced code blocks (highlighted), lists,
// blockquotes, tables, rules and http(s) links and autolinks. The text is escaped before any
// markup is added, so nothing the model writes becomes HTML; links keep only http(s) URLs.
// Unclosed constructs (a fence still streaming in) render as far as they go. Whatever the
// input, it never throws: on any failure the text shows as escaped plain text.

import { escapeHtml } from './escape.js';
import { highlight } from './highlight.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:\s+(.*)|$)/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
// Quotes and lists nest by recursion: deeper than this, the rest is shown as plain text
// (so that '>' repeated 20000 times cannot overflow the stack).
const MAX_DEPTH = 12;
const PLACEHOLDER = /\u0001(\d+)\u0001/g;

const drawnFrom = new WeakMap(); // each block element drawn by patchMarkdown: its HTML

/**
 * Renders Markdown `source` into `container`, replacing only the top-level blocks that
 * changed since the last call: while an answer streams in, the finished paragraphs and code
 * blocks stay as they are (with any selection or "Copied" in them), and only the last one
 * is redrawn.
 */
export function patchMarkdown(container, source) {
  const html = renderBlocks(source);
  const children = [...container.children];
  html.forEach((block, n) => {
    if (children[n] && drawnFrom.get(children[n]) === block) return;
    const template = document.createElement('template');
    template.innerHTML = block; // escaped by the renderer
    const element = template.content.firstElementChild;
    drawnFrom.set(element, block);
    if (children[n]) children[n].replaceWith(element);
    else container.append(element);
  });
  for (const extra of children.slice(html.length)) extra.remove();
}

/** The top-level blocks of `source`, each the HTML of one element. */
function renderBlocks(source) {
  try {
    return blocks(String(source).replace(/\r\n?/g, '\n').replace(/\0/g, '').split('\n'), 0);
  } catch {
    // Whatever went wrong, the text still shows, as text.
    return [`<p>${escapeHtml(source).replace(/\n/g, '<br>')}</p>`];
  }
}

/** Copies a code block when its Copy button is clicked, anywhere under `root`. */
export function enableCodeCopy(root) {
  root.addEventListener('click', (event) => {
    const button = event.target.closest('.copy-code');
    if (!button) return;
    const code = button.closest('.code-block').querySelector('code').textContent;
    if (!navigator.clipboard) {
      // Not a secure context: select the code, for the user to copy.
      window.getSelection().selectAllChildren(button.closest('.code-block').querySelector('pre'));
      return;
    }
    navigator.clipboard.writeText(code).then(
      () => flash(button, 'Copied'),
      () => flash(button, 'Copy failed'),
    );
  });
}

function flash(button, text) {
  button.textContent = text;
  setTimeout(() => (button.textContent = 'Copy'), 1500);
}

// -- blocks ----------------------------------------------------------------------------------

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

/** Whether a table starts at line `i`: a row with a pipe, then a divider row. */
function startsTable(lines, i) {
  return lines[i].includes('|') && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]);
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

/** The blocks of `lines` (an array of each one's HTML), `depth` quotes or lists deep. */
function blocks(lines, depth) {
  if (depth > MAX_DEPTH) return [`<p>${inline(lines.join('\n'))}</p>`];
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if (!line.trim()) {
      i++;
    } else if ((match = FENCE.exec(line))) {
      const fence = match[1];
      const body = [];
      for (i++; i < lines.length && !isClosing(lines[i], fence); i++) body.push(lines[i]);
      i++; // the closing fence, if there is one
      out.push(codeBlock(body.join('\n'), match[2]));
    } else if ((match = HEADING.exec(line))) {
      const level = match[1].length;
      out.push(`<h${level}>${inline(match[2])}</h${level}>`);
      i++;
    } else if (RULE.test(line)) {
      out.push('<hr>');
      i++;
    } else if (QUOTE.test(line)) {
      const body = [];
      for (; i < lines.length && QUOTE.test(lines[i]); i++) body.push(QUOTE.exec(lines[i])[1]);
      out.push(`<blockquote>${blocks(body, depth + 1).join('')}</blockquote>`);
    } else if (ITEM.test(line)) {
      i = list(lines, i, out, depth);
    } else if (startsTable(lines, i)) {
      i = table(lines, i, out);
    } else {
      const body = [line.trim()];
      for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines[i]) && !startsTable(lines, i); i++) {
        body.push(lines[i].trim());
      }
      out.push(`<p>${inline(body.join('\n'))}</p>`);
    }
  }
  return out;
}

function isClosing(line, fence) {
  const trimmed = line.trim();
  return trimmed.startsWith(fence) && /^[`~]+$/.test(trimmed) && trimmed[0] === fence[0];
}

function codeBlock(code, language) {
  const label = escapeHtml(language || 'text');
  return (
    `<div class="code-block"><div class="code-head"><span>${label}</span>` +
    '<button type="button" class="copy-code">Copy</button></div>' +
    `<pre><code>${highlight(code, language)}</code></pre></div>`
  );
}

/** The list starting at line `i`, pushed to `out`; returns the line after it. */
function list(lines, i, out, depth) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const items = [];
  let loose = false;
  const sameList = (match) => match && match[1].length === indent && /\d/.test(match[2]) === ordered;
  while (i < lines.length) {
    const match = ITEM.exec(lines[i]);
    if (!sameList(match)) break;
    const contentIndent = indent + match[2].length + 1;
    const body = [match[3] || ''];
    // The item's further lines: indented ones (nested lists, code, paragraphs after a blank
    // line) and, straight after its text, lazy continuation lines.
    for (i++; i < lines.length; i++) {
      const line = lines[i];
      if (!line.trim()) {
        const next = lines.slice(i + 1).find((later) => later.trim());
        if (next === undefined || indentOf(next) <= indent) break;
        body.push('');
        continue;
      }
      if (indentOf(line) > indent) body.push(line.slice(Math.min(indentOf(line), contentIndent)));
      else if (!startsBlock(line) && body[body.length - 1] !== '') body.push(line.trim());
      else break;
    }
    items.push(body);
    // Blank lines between items make the list loose; anything else after them ends it.
    let next = i;
    while (next < lines.length && !lines[next].trim()) next++;
    if (next > i) {
      if (next >= lines.length || !sameList(ITEM.exec(lines[next]))) break;
      loose = true;
      i = next;
    }
  }
  const tag = ordered ? 'ol' : 'ul';
  const start = ordered ? parseInt(first[2], 10) : 1;
  const html = items.map((body) => {
    const inner = blocks(body, depth + 1).join('');
    // A tight item's first paragraph is its text, not a paragraph.
    return `<li>${loose ? inner : inner.replace(/^<p>([\s\S]*?)<\/p>/, '$1')}</li>`;
  });
  out.push(`<${tag}${start !== 1 ? ` start="${start}"` : ''}>${html.join('')}</${tag}>`);
  return i;
}

/** The table starting at line `i` (its header, then the divider), pushed to `out`. */
function table(lines, i, out) {
  // An escaped pipe (\|) is a pipe in the cell, even in code, as in GitHub's tables.
  const cells = (line) => splitRow(line).map((cell) => inline(cell.trim().replace(/\\\|/g, '|')));
  const head = cells(lines[i]);
  const rows = [];
  for (i += 2; i < lines.length && lines[i].includes('|') && lines[i].trim(); i++) rows.push(cells(lines[i]));
  const row = (values, tag) => `<tr>${head.map((_, n) => `<${tag}>${values[n] ?? ''}</${tag}>`).join('')}</tr>`;
  out.push(`<table><thead>${row(head, 'th')}</thead><tbody>${rows.map((r) => row(r, 'td')).join('')}</tbody></table>`);
  return i;
}

/** A table row's cells: split at its pipes, but not at escaped ones (\|) or ones inside a
 * code span; the outer pipes are optional. */
function splitRow(line) {
  const row = line.trim();
  const cells = [''];
  for (let i = 0; i < row.length; i++) {
    let piece = row[i];
    if (piece === '\\' && row[i + 1] === '|') {
      piece = '\\|';
    } else if (piece === '`') {
      const ticks = /`+/y;
      ticks.lastIndex = i;
      const run = ticks.exec(row)[0];
      const close = row.indexOf(run, i + run.length);
      piece = close < 0 ? run : row.slice(i, close + run.length);
    } else if (piece === '|') {
      cells.push('');
      continue;
    }
    cells[cells.length - 1] += piece;
    i += piece.length - 1;
  }
  if (cells.length > 1 && row.startsWith('|') && !cells[0].trim()) cells.shift();
  if (cells.length > 1 && row.endsWith('|') && !row.endsWith('\\|') && !cells[cells.length - 1].trim()) cells.pop();
  return cells;
}

// -- inline ----------------------------------------------------------------------------------

/**
 * Inline Markdown as HTML. Backslash escapes, code spans and links are cut out first and
 * held as placeholders (\u0001<n>\u0001), so that emphasis never applies inside them; the
 * rest is escaped, then the emphasis tags are added around the escaped text, and the held
 * pieces put back (a link's label may hold a code span: put back within it too).
 */
function inline(text) {
  const held = [];
  const hold = (html) => `\u0001${held.push(html) - 1}\u0001`;
  const restore = (html) => html.replace(PLACEHOLDER, (_, n) => held[Number(n)]);
  const link = (url, label) =>
    hold(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  let html = text.replace(/\u0001/g, '');
  // One pass for both, left to right: an escaped backtick opens no code span, and a
  // backslash inside a code span is just a backslash.
  html = html.replace(/\\([!-/:-@[-`{-~])|(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/g, (_, escaped, ticks, code) =>
    hold(escaped !== undefined ? escapeHtml(escaped) : `<code>${escapeHtml(code.trim() || code)}</code>`),
  );
  html = html.replace(/!?\[([^\]\n]+)\]\(\s*<?(https?:\/\/[^\s)>\u0001]+)>?(?:\s+"[^"]*")?\s*\)/g, (_, label, url) =>
    link(url, restore(emphasis(escapeHtml(label)))),
  );
  html = html.replace(/<(https?:\/\/[^\s<>\u0001]+)>/g, (_, url) => link(url, escapeHtml(url)));
  html = html.replace(/\bhttps?:\/\/[^\s<>()\u0001]*[^\s<>().,;:!?'"\u0001]/g, (url) => link(url, escapeHtml(url)));
  return restore(emphasis(escapeHtml(html)).replace(/\n/g, '<br>'));
}

/** Bold, italic and strikethrough, on escaped text. */
function emphasis(html) {
  return html
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
    .replace(/\*(?=[^\s*])([^*]*?[^\s*])\*/g, '<em>$1</em>')
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
}
