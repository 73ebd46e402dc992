// A small syntax highlighter: keywords, strings, comments and numbers, for python, js/ts,
// json, bash and sql, and a generic fallback. It returns HTML in which every piece of the
// source is escaped; only its own <span class="tok-..."> tags are markup.

import { escapeHtml } from './escape.js';

const DOUBLE = String.raw`"(?:\\.|[^"\\\n])*"`;
const SINGLE = String.raw`'(?:\\.|[^'\\\n])*'`;
const BACKTICK = String.raw`\`(?:\\[\s\S]|[^\`\\])*\``;
const BLOCK_COMMENT = String.raw`\/\*[\s\S]*?(?:\*\/|$)`;
const NUMBER = String.raw`\b(?:0[xX][\da-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)n?\b`;
const WORD = String.raw`[A-Za-z_$][\w$]*`;

const words = (text) => new Set(text.split(/\s+/));

const JS_KEYWORDS = words(`
  async await break case catch class const continue debugger default delete do else export
  extends finally for from function if import in instanceof let new of return static super
  switch this throw try typeof var void while with yield as interface type enum implements
  private protected public readonly declare namespace abstract keyof satisfies`);

// Each language: rules tried in order, as [token class, pattern]; a 'word' match is a keyword
// or literal when it is in those sets, else plain text.
const LANGUAGES = {
  python: {
    rules: [
      ['comment', '#.*'],
      ['string', String.raw`[rbfuRBFU]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|${DOUBLE}|${SINGLE})`],
      ['meta', String.raw`@[\w.]+`],
      ['number', NUMBER],
      ['word', WORD],
    ],
    keywords: words(`
      and as assert async await break class continue def del elif else except finally for from
      global if import in is lambda nonlocal not or pass raise return try while with yield match case`),
    literals: words('True False None self cls'),
  },
  javascript: {
    rules: [
      ['comment', `\\/\\/.*|${BLOCK_COMMENT}`],
      ['string', `${DOUBLE}|${SINGLE}|${BACKTICK}`],
      ['number', NUMBER],
      ['word', WORD],
    ],
    keywords: JS_KEYWORDS,
    literals: words('true false null undefined NaN Infinity'),
  },
  json: {
    rules: [
      ['key', `${DOUBLE}(?=\\s*:)`],
      ['string', DOUBLE],
      ['number', String.raw`-?\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b`],
      ['word', WORD],
    ],
    keywords: new Set(),
    literals: words('true false null'),
  },
  bash: {
    rules: [
      ['comment', String.raw`(?:^|(?<=\s))#.*`],
      ['string', `${DOUBLE}|'[^']*'`],
      ['variable', String.raw`\$(?:\{[^}\n]*\}|[\w@#?*!$-]+)`],
      ['number', String.raw`\b\d+\b`],
      ['word', String.raw`[A-Za-z_][\w-]*`],
    ],
    keywords: words(`
      if then else elif fi for while until do done case esac in function return local export
      readonly declare set unset shift break continue exit source alias echo cd sudo`),
    literals: words('true false'),
  },
  sql: {
    caseless: true,
    rules: [
      ['comment', `--.*|${BLOCK_COMMENT}`],
      ['string', String.raw`'(?:''|[^'])*'`],
      ['key', String.raw`"(?:""|[^"])*"`],
      ['number', NUMBER],
      ['word', WORD],
    ],
    keywords: words(`
      select from where and or not in is null as join left right inner outer full cross on
      group by order having limit offset insert into values update set delete create table
      index view drop alter add column primary key foreign references unique default distinct
      union all case when then else end with exists between like asc desc returning over
      partition count sum avg min max cast coalesce begin commit rollback`),
    literals: words('true false null'),
  },
  generic: {
    rules: [
      ['comment', `\\/\\/.*|${BLOCK_COMMENT}|(?:^|(?<=\\s))#.*`],
      ['string', `${DOUBLE}|${SINGLE}|${BACKTICK}`],
      ['number', NUMBER],
      ['word', WORD],
    ],
    keywords: words(`
      if else elif for while do return break continue function func fn def class struct enum
      impl trait interface import from package use module pub public private static const let
      var mut new try catch except finally throw raise switch case match default async await
      yield void int string bool type extends`),
    literals: words('true false null nil none None True False undefined'),
  },
};

// The names a fence may give each language.
const ALIASES = Object.fromEntries(
  Object.entries({
    python: 'py python python3',
    javascript: 'js javascript jsx mjs cjs ts typescript tsx',
    json: 'json jsonc json5',
    bash: 'sh bash shell zsh console shellscript',
    sql: 'sql postgres postgresql mysql sqlite',
  }).flatMap(([language, names]) => names.split(' ').map((name) => [name, language])),
);

const compiled = new Map();

function compile(name) {
  if (!compiled.has(name)) {
    const language = LANGUAGES[name];
    const source = language.rules.map(([, pattern]) => `(${pattern})`).join('|');
    compiled.set(name, { ...language, pattern: new RegExp(source, language.caseless ? 'gi' : 'g') });
  }
  return compiled.get(name);
}

/** The language a fence names, as one of ours ('generic' when unknown). */
function languageOf(tag) {
  return ALIASES[(tag || '').toLowerCase()] || 'generic';
}

/** `code` as escaped HTML, with its tokens wrapped in <span class="tok-..."> tags. */
export function highlight(code, tag) {
  const language = compile(languageOf(tag));
  const { pattern, rules, keywords, literals } = language;
  const caseless = Boolean(language.caseless);
  let html = '';
  let last = 0;
  pattern.lastIndex = 0;
  for (let match; (match = pattern.exec(code));) {
    const rule = rules[match.slice(1).findIndex((group) => group !== undefined)][0];
    let kind = rule;
    if (rule === 'word') {
      const word = caseless ? match[0].toLowerCase() : match[0];
      kind = keywords.has(word) ? 'keyword' : literals.has(word) ? 'literal' : null;
    }
    html += escapeHtml(code.slice(last, match.index));
    html += kind ? `<span class="tok-${kind}">${escapeHtml(match[0])}</span>` : escapeHtml(match[0]);
    last = pattern.lastIndex;
  }
  return html + escapeHtml(code.slice(last));
}
