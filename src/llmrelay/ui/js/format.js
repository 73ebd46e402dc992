// How numbers, durations, money and moments read on the page.

/** Milliseconds as "85 ms" or "1.24 s"; a dash when unknown. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** US dollars with enough digits for the tiny costs of single requests; "n/a" when unknown. */
export function usd(value) {
  if (value === null || value === undefined) return 'n/a';
  if (value === 0) return '$0';
  if (Math.abs(value) >= 1) return `$${value.toFixed(2)}`;
  // Up to three significant digits: $0.000123, $0.045.
  const digits = Math.min(10, 2 - Math.floor(Math.log10(Math.abs(value))));
  return `$${value.toFixed(digits).replace(/0+$/, '')}`;
}

/** A count with thousands separators; a dash when unknown. */
export function count(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString();
}

/** A Unix time (seconds) as a local time, with the date unless it is today. */
export function moment(seconds) {
  if (!seconds) return '—';
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

/** Prompt → completion tokens of a usage (or a record with those fields), as "12 → 40";
 * `unknown` when it has neither. */
export function tokenCounts(usage, unknown = 'n/a') {
  if (!usage || (usage.prompt_tokens == null && usage.completion_tokens == null)) return unknown;
  return `${count(usage.prompt_tokens)} → ${count(usage.completion_tokens)}`;
}

/** A model's usage as "12 → 40 tokens" (prompt → completion). */
export function tokens(usage) {
  const counts = tokenCounts(usage, null);
  return counts ? `${counts} tokens` : 'tokens n/a';
}
