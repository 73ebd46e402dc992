// The Usage tab: requests, tokens, cost and latency over time (GET /v1/usage/series), one
// uPlot chart per metric and one series per model or key.

import { getJSON } from './api.js';
import { byTestId, showError } from './dom.js';
import { count, duration, usd } from './format.js';

// Each range's length and bucket, in seconds: 60 to 170 points a chart.
const RANGES = { '1h': [3600, 60], '24h': [86400, 900], '7d': [604800, 3600] };
// Line colours, each at least 3:1 against its theme's card background.
const PALETTES = {
  light: ['#2f6feb', '#e8590c', '#2b8a3e', '#c2255c', '#7048e8', '#0c8599', '#b08900', '#5c940d'],
  dark: ['#2f6feb', '#e8590c', '#2b8a3e', '#f06595', '#9775fa', '#0c8599', '#b08900', '#5c940d'],
};
const HEIGHT = 220;

const group = byTestId('usage-group');
const range = byTestId('usage-range');
const empty = byTestId('usage-empty');
const charts = document.getElementById('usage-charts');
const totals = document.getElementById('usage-totals');
const errorBox = document.getElementById('usage-error');
const containers = {
  requests: byTestId('usage-chart-requests'),
  tokens: byTestId('usage-chart-tokens'),
  cost: byTestId('usage-chart-cost'),
  latency: byTestId('usage-chart-latency'),
};

let plots = [];
let last = null; // the last series drawn, to redraw on a theme change
let loading = 0; // the latest load, so that an earlier one answering late is dropped

export function initUsage() {
  group.addEventListener('change', refreshUsage);
  range.addEventListener('change', refreshUsage);
  byTestId('usage-refresh').addEventListener('click', refreshUsage);
  document.addEventListener('llmrelay:theme', () => last && draw(last));
  // The charts follow their containers' width (the view may have been hidden when drawn).
  new ResizeObserver(() => {
    for (const plot of plots) {
      const width = plot.root.parentElement.clientWidth;
      if (width && width !== plot.width) plot.setSize({ width, height: HEIGHT });
    }
  }).observe(charts);
}

export async function refreshUsage() {
  const load = ++loading;
  const [span, bucket] = RANGES[range.value];
  // Whole buckets, the last one holding now.
  const end = Math.ceil(Date.now() / 1000 / bucket) * bucket;
  const query = new URLSearchParams({ start: end - span, end, bucket, by: group.value });
  try {
    const series = await getJSON(`/v1/usage/series?${query}`);
    if (load !== loading) return;
    showError(errorBox, '');
    last = { ...series, start: end - span, end, period: range.selectedOptions[0].text.toLowerCase() };
    draw(last);
  } catch (error) {
    if (load !== loading) return;
    showError(errorBox, `Could not load the usage: ${error.message}`);
  }
}

function draw({ data, start, end, bucket, by, truncated, period }) {
  for (const plot of plots) plot.destroy();
  plots = [];
  empty.hidden = data.length > 0;
  charts.hidden = data.length === 0;
  showTotals(data, truncated);
  if (!data.length) return;

  const times = [];
  for (let t = start; t < end; t += bucket) times.push(t);
  const span = { times, period };
  const slot = new Map(times.map((t, n) => [t, n]));
  const names = [...new Set(data.map((row) => row.group))];
  const label = (name) => name ?? (by === 'key' ? 'no key' : 'unknown');
  const palette = PALETTES[document.documentElement.dataset.theme] || PALETTES.light;
  const color = (n) => palette[n % palette.length];
  // One array per group of a row's value in each bucket; `missing` where it has no row.
  const column = (pick, missing) =>
    names.map((name) => {
      const values = times.map(() => missing);
      for (const row of data) if (row.group === name && slot.has(row.start)) values[slot.get(row.start)] = pick(row);
      return values;
    });
  const lines = (pick, format) =>
    column(pick, 0).map((values, n) => ({
      values,
      label: label(names[n]),
      color: color(n),
      format,
    }));

  const tokens = (v) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k` : String(Math.round(v)));
  plot(containers.requests, span, lines((row) => row.requests, count));
  plot(containers.tokens, span, lines((row) => row.total_tokens, count), tokens);
  plot(containers.cost, span, lines((row) => row.cost_usd, usd), usd);
  const p50 = column((row) => row.latency_ms.p50, null);
  const p95 = column((row) => row.latency_ms.p95, null);
  plot(
    containers.latency,
    span,
    names.flatMap((name, n) => [
      { values: p50[n], label: `${label(name)} p50`, color: color(n), format: duration, summary: 'highest' },
      {
        values: p95[n],
        label: `${label(name)} p95`,
        color: color(n),
        format: duration,
        summary: 'highest',
        dash: [6, 4],
      },
    ]),
    duration,
  );
}

/**
 * A uPlot chart in `container`, over `times` (the buckets' starts) in `period` (its name):
 * `lines` is [{values, label, color, format, dash?, summary?}]. The container (role="img")
 * is named by a summary of each line: its total, or with `summary: 'highest'`, its highest.
 */
function plot(container, { times, period }, lines, axisFormat = count) {
  const caption = container.closest('figure').querySelector('figcaption').textContent;
  const summaries = lines.map(({ values, label, format, summary }) => {
    const known = values.filter((value) => value !== null);
    if (summary === 'highest') return `${label} highest ${known.length ? format(Math.max(...known)) : 'none'}`;
    return `${label} ${format(known.reduce((sum, value) => sum + value, 0))} in all`;
  });
  container.setAttribute('aria-label', `${caption}, ${period}: ${summaries.join('; ')}.`);
  const style = getComputedStyle(document.documentElement);
  const text = style.getPropertyValue('--muted').trim();
  const grid = style.getPropertyValue('--border').trim();
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  container.replaceChildren();
  const chart = new window.uPlot(
    {
      width: container.clientWidth || 300,
      height: HEIGHT,
      cursor: { points: { size: 6 } },
      scales: { x: { time: true } },
      series: [
        { value: (u, t) => (t === null ? '—' : new Date(t * 1000).toLocaleString()) },
        ...lines.map((line) => ({
          label: line.label,
          stroke: line.color,
          width: 2,
          dash: line.dash,
          value: (u, v) => (v === null ? '—' : line.format(v)),
        })),
      ],
      axes: [axis, { ...axis, size: labelRoom, values: (u, ticks) => ticks.map(axisFormat) }],
    },
    [times, ...lines.map((line) => line.values)],
    container,
  );
  plots.push(chart);
}

/** The y axis's width: room for its longest tick label (uPlot passes them, once drawn). */
function labelRoom(u, labels) {
  return 20 + 7 * Math.max(3, ...(labels || []).map((label) => String(label).length));
}

function showTotals(data, truncated) {
  const sum = (pick) => data.reduce((total, row) => total + pick(row), 0);
  if (!data.length) {
    totals.textContent = '';
    return;
  }
  const errors = sum((row) => row.errors);
  totals.textContent = [
    `${count(sum((row) => row.requests))} requests`,
    errors ? `${count(errors)} failed` : null,
    `${count(sum((row) => row.total_tokens))} tokens`,
    usd(sum((row) => row.cost_usd)),
    truncated ? 'newest requests only' : null,
  ]
    .filter(Boolean)
    .join(' · ');
}
