// The typing effect of an answer streaming in: its text is revealed at a steady pace that
// adapts to the backlog, painted at most once a frame, rather than a whole chunk at a time.
// Chat and Compare share it.

import { reducedMotion } from './dom.js';

// The pace writes the backlog in about this time: the more text waits, the more
// characters a frame (and at least one).
const CATCH_UP_MS = 250;
// Text that arrived this long ago shows, whatever the pace.
const MAX_LAG_MS = 500;

/**
 * A painter for a reply streaming in: call `update(reply)` after each chunk, and
 * `finish(reply)` once it has ended or was stopped, which paints all of it at once.
 * `paint(reply, text)` draws the reply with `text`, the part of its content revealed so far
 * (it should change only what changed: it runs every frame while text is being revealed).
 */
export function typewriter(paint) {
  let reply = null;
  let shown = 0; // the characters of reply.content revealed
  let arrivals = []; // [when, content length then], for the lag limit
  let frame = 0;
  let last = 0; // the time of the previous frame, while revealing

  const step = (now) => {
    frame = 0;
    const text = reply.content;
    let due = shown;
    while (arrivals.length && now - arrivals[0][0] >= MAX_LAG_MS) due = Math.max(due, arrivals.shift()[1]);
    const elapsed = last ? Math.min(now - last, 100) : 16;
    const paced = shown + Math.max(1, Math.ceil(((text.length - shown) * elapsed) / CATCH_UP_MS));
    shown = reducedMotion() ? text.length : wholeCharacters(text, Math.min(text.length, Math.max(due, paced)));
    last = shown < text.length ? now : 0;
    paint(reply, text.slice(0, shown));
    if (shown < text.length) frame = requestAnimationFrame(step);
  };

  return {
    update(next) {
      reply = next;
      arrivals.push([performance.now(), next.content.length]);
      frame ||= requestAnimationFrame(step);
    },
    finish(next) {
      cancelAnimationFrame(frame);
      frame = 0;
      arrivals = [];
      reply = next;
      shown = next.content.length;
      paint(next, next.content);
    },
  };
}

/** `n`, or one more when the n-th character is the first half of a surrogate pair (an
 * emoji, say), so that no half character shows. */
function wholeCharacters(text, n) {
  const code = text.charCodeAt(n - 1);
  return code >= 0xd800 && code <= 0xdbff ? n + 1 : n;
}
