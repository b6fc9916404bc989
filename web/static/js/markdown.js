// markdown.js: renders Markdown as it streams, safely.
//
// Model text never becomes HTML. The parser turns it into a small tree of
// plain objects ({tag, attrs, children} or a string), and the renderer
// builds DOM nodes from that tree with createElement, setAttribute (from a
// fixed set of attributes) and text nodes. Raw HTML in the text (<script>,
// <img onerror=…>) is therefore only ever text, links go only to http(s)
// and mailto URLs (anything else, javascript: included, stays as text), and
// images are shown as links, so no model text can make the page load
// anything.
//
// Streaming without flicker: render() is called with the whole text so far,
// many times a second. Top-level blocks whose source has not changed are
// left alone; the changed ones (usually only the last) are patched in place,
// node by node, so text nodes grow instead of being replaced. While
// streaming, the unfinished end of the text is read optimistically: an open
// **bold** or `code` span is shown styled before it closes, and a half-typed
// marker (a lone "-", "``", "**") is held back until it means something.
//
// Supported: paragraphs (a newline is a line break, as in chat apps), ATX
// headings, emphasis (* _ ** __ ~~), inline code, links, autolinks and bare
// URLs, images (as links), block quotes, ordered/unordered/task lists
// (nested), fenced code blocks with a language label, light syntax colouring
// and a copy button, GFM tables and thematic breaks.

const SVG = 'http://www.w3.org/2000/svg';

const h = (tag, attrs = null, children = []) => ({ tag, attrs, children });

/**
 * safeHref returns the normalised URL if it is an absolute http, https or
 * mailto URL, else null. The URL parser strips the tabs and newlines that
 * could otherwise hide a "java\tscript:" scheme.
 */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(String(raw).trim());
  } catch {
    return null;
  }
  return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? url.href : null;
}

// ---------------------------------------------------------------- blocks

const reBlank = /^[ \t]*$/;
const reFence = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const reFenceClose = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const reHeading = /^ {0,3}(#{1,6})(?:[ \t]+(.*)|[ \t]*)$/;
const reHr = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const reQuote = /^ {0,3}>[ ]?(.*)$/;
const reItem = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const reTableDelim = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
// A last line that is only the start of some syntax, held back while streaming.
const rePartial = /^ {0,3}(?:[-*+_=]{1,2}|\d{1,9}[.)]?|`{1,3}|~{1,3}|#{1,6}|>|\|)?[ \t]*$/;

/** Columns of leading whitespace, tabs counting to the next multiple of 4. */
function indentOf(line) {
  let col = 0;
  for (const c of line) {
    if (c === ' ') col++;
    else if (c === '\t') col += 4 - (col % 4);
    else break;
  }
  return col;
}

/** Removes up to cols columns of leading whitespace. */
function dedent(line, cols) {
  let col = 0;
  let i = 0;
  while (i < line.length && col < cols) {
    if (line[i] === ' ') col++;
    else if (line[i] === '\t') {
      const w = 4 - (col % 4);
      if (col + w > cols) return ' '.repeat(col + w - cols) + line.slice(i + 1);
      col += w;
    } else break;
    i++;
  }
  return line.slice(i);
}

function fenceOf(line) {
  const m = reFence.exec(line);
  if (!m || (m[2][0] === '`' && m[3].includes('`'))) return null;
  return m;
}

function itemOf(line) {
  const m = reItem.exec(line);
  if (!m) return null;
  const marker = m[2];
  const ordered = /\d/.test(marker[0]);
  const at = m[1].length + marker.length;
  const spaces = m[3] ? indentOf(' '.repeat(at) + m[3]) - at : 0;
  const pad = spaces === 0 || spaces > 4 ? 1 : spaces;
  const text = m[3] && spaces > 4 ? ' '.repeat(spaces - 1) + (m[4] ?? '') : (m[4] ?? '');
  return {
    ordered,
    delim: ordered ? marker.slice(-1) : marker,
    start: ordered ? parseInt(marker, 10) : 1,
    contentIndent: m[1].length + marker.length + pad,
    text,
    empty: !m[4] || reBlank.test(m[4]),
  };
}

function isTableStart(lines, i) {
  return lines[i].includes('|') && i + 1 < lines.length && reTableDelim.test(lines[i + 1]) &&
    splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

/** Whether line starts a block that ends a paragraph. */
function interrupts(lines, i) {
  const line = lines[i];
  if (fenceOf(line) || reHeading.test(line) || reHr.test(line) || reQuote.test(line)) return true;
  const it = itemOf(line);
  if (it && !it.empty && (!it.ordered || it.start === 1)) return true;
  return isTableStart(lines, i);
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') {
      cur += '|';
      i++;
    } else if (s[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

/**
 * parseBlocks parses lines into blocks. streaming says the last line is the
 * live end of a stream; it is passed on to the block that holds that line.
 * Each block records its line range [start, end).
 */
function parseBlocks(lines, streaming) {
  const out = [];
  const n = lines.length;
  let i = 0;
  while (i < n) {
    const line = lines[i];
    if (reBlank.test(line)) {
      i++;
      continue;
    }
    const start = i;
    let m;
    if ((m = fenceOf(line))) {
      const indent = m[1].length;
      const fence = m[2];
      const body = [];
      let closed = false;
      for (i++; i < n; i++) {
        const c = reFenceClose.exec(lines[i]);
        if (c && c[1][0] === fence[0] && c[1].length >= fence.length) {
          closed = true;
          i++;
          break;
        }
        body.push(dedent(lines[i], indent));
      }
      out.push({ type: 'code', lang: m[3].trim().split(/\s+/)[0] || '', text: body.join('\n'), closed, start, end: i });
      continue;
    }
    if ((m = reHeading.exec(line))) {
      const text = (m[2] ?? '').replace(/(?:^|[ \t]+)#+[ \t]*$/, '').trim();
      out.push({ type: 'heading', level: m[1].length, text, start, end: ++i });
      continue;
    }
    if (reHr.test(line)) {
      out.push({ type: 'hr', start, end: ++i });
      continue;
    }
    if (reQuote.test(line)) {
      const inner = [];
      while (i < n) {
        const q = reQuote.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (!reBlank.test(lines[i]) && inner.length && !reBlank.test(inner.at(-1)) && !interrupts(lines, i)) inner.push(lines[i]);
        else break;
        i++;
      }
      out.push({ type: 'quote', children: parseBlocks(inner, streaming && i === n), start, end: i });
      continue;
    }
    if (itemOf(line)) {
      const list = parseList(lines, i, streaming);
      out.push(list);
      i = list.end;
      continue;
    }
    if (isTableStart(lines, i)) {
      const head = splitRow(lines[i]);
      const align = splitRow(lines[i + 1]).map((c) =>
        c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : '');
      const rows = [];
      for (i += 2; i < n && !reBlank.test(lines[i]) && lines[i].includes('|') && !interrupts(lines, i); i++) {
        const cells = splitRow(lines[i]);
        rows.push(head.map((_, k) => cells[k] ?? ''));
      }
      out.push({ type: 'table', head, align, rows, streaming: streaming && i === n, start, end: i });
      continue;
    }
    const para = [line.trim()];
    for (i++; i < n && !reBlank.test(lines[i]) && !interrupts(lines, i); i++) para.push(lines[i].trim());
    out.push({ type: 'para', text: para.join('\n'), streaming: streaming && i === n, start, end: i });
  }
  return out;
}

function parseList(lines, i, streaming) {
  const n = lines.length;
  const first = itemOf(lines[i]);
  const list = { type: 'list', ordered: first.ordered, startNum: first.start, items: [], loose: false, start: i, end: i };
  while (i < n) {
    const it = itemOf(lines[i]);
    if (!it || it.ordered !== first.ordered || it.delim !== first.delim || indentOf(lines[i]) >= first.contentIndent + 4) break;
    const body = [it.text];
    let blank = false;
    for (i++; i < n; i++) {
      const l = lines[i];
      if (reBlank.test(l)) {
        body.push('');
        blank = true;
        continue;
      }
      if (indentOf(l) >= it.contentIndent) {
        body.push(dedent(l, it.contentIndent));
      } else if (!blank && !interrupts(lines, i) && !itemOf(l)) {
        body.push(l.trim()); // a lazy continuation line
      } else break;
      blank = false;
    }
    let trailing = 0;
    while (body.length > 1 && body.at(-1) === '') {
      body.pop();
      trailing++;
    }
    i -= trailing; // blank lines after an item belong to whatever follows
    if (body.includes('')) list.loose = true;
    const item = { children: null, task: null };
    const task = /^\[([ xX])\](?:[ \t]+|$)/.exec(body[0]);
    if (task) {
      item.task = task[1] !== ' ';
      body[0] = body[0].slice(task[0].length);
    }
    item.children = parseBlocks(body, streaming && i === n);
    list.items.push(item);
    let j = i;
    while (j < n && reBlank.test(lines[j])) j++;
    if (j < n && j > i) {
      const next = itemOf(lines[j]);
      if (next && next.ordered === first.ordered && next.delim === first.delim) {
        list.loose = true;
        i = j;
        continue;
      }
      break;
    }
  }
  list.end = i;
  return list;
}

// ---------------------------------------------------------------- inline

const reAsciiPunct = /[!-/:-@[-`{-~]/;
const isSpace = (c) => c === undefined || /\s/u.test(c);
const isPunct = (c) => c !== undefined && /[\p{P}\p{S}]/u.test(c);

function unescape(s) {
  return s.replace(/\\([!-/:-@[-`{-~])/g, '$1');
}

/** Finds the link or image that starts with '[' at i (after a '!' for images). */
function scanLink(text, i, streaming) {
  const n = text.length;
  let depth = 0;
  let j = i;
  for (; j < n; j++) {
    const c = text[j];
    if (c === '\\') j++;
    else if (c === '[') depth++;
    else if (c === ']' && --depth === 0) break;
  }
  if (j >= n) return streaming ? { label: text.slice(i + 1), pending: true, end: n } : null;
  const label = text.slice(i + 1, j);
  if (j + 1 === n && streaming) return { label, pending: true, end: n };
  if (text[j + 1] !== '(') return null;
  let k = j + 2;
  while (k < n && (text[k] === ' ' || text[k] === '\n')) k++;
  let dest = '';
  if (text[k] === '<') {
    const e = text.indexOf('>', k);
    if (e < 0 || text.slice(k, e).includes('\n')) return streaming && e < 0 ? { label, pending: true, end: n } : null;
    dest = text.slice(k + 1, e);
    k = e + 1;
  } else {
    const s = k;
    let parens = 0;
    for (; k < n; k++) {
      const c = text[k];
      if (c === '\\') k++;
      else if (/\s/.test(c)) break;
      else if (c === '(') parens++;
      else if (c === ')') {
        if (parens === 0) break;
        parens--;
      }
    }
    dest = text.slice(s, Math.min(k, n));
  }
  while (k < n && (text[k] === ' ' || text[k] === '\n')) k++;
  const q = text[k];
  if (q === '"' || q === "'" || q === '(') {
    const e = text.indexOf(q === '(' ? ')' : q, k + 1);
    if (e < 0) return streaming ? { label, pending: true, end: n } : null;
    k = e + 1;
    while (k < n && (text[k] === ' ' || text[k] === '\n')) k++;
  }
  if (k >= n) return streaming ? { label, pending: true, end: n } : null;
  if (text[k] !== ')') return null;
  return { label, dest: unescape(dest), end: k + 1 };
}

function linkNode(href, children, cls) {
  const attrs = { href, target: '_blank', rel: 'noopener noreferrer nofollow' };
  if (cls) attrs.class = cls;
  return h('a', attrs, children);
}

/** Trims what GFM leaves out of a bare URL's end: punctuation, unbalanced ')'. */
function trimURL(url) {
  for (;;) {
    const last = url.at(-1);
    if ('?!.,:*_~\'";'.includes(last)) url = url.slice(0, -1);
    else if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
    else return url;
  }
}

/**
 * inline parses a paragraph's text into nodes. streaming says its end is
 * still arriving: unclosed spans are then shown as if closed.
 */
function inline(text, streaming) {
  const items = [];
  let buf = '';
  const flush = () => {
    if (buf) items.push(buf);
    buf = '';
  };
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (c === '\\') {
      const d = text[i + 1];
      if (d === '\n') {
        flush();
        items.push(h('br'));
        i += 2;
      } else if (d !== undefined && reAsciiPunct.test(d)) {
        buf += d;
        i += 2;
      } else {
        buf += c;
        i++;
      }
      continue;
    }
    if (c === '\n') {
      flush();
      items.push(h('br'));
      i++;
      continue;
    }
    if (c === '`') {
      let j = i;
      while (text[j] === '`') j++;
      const run = j - i;
      let close = -1;
      for (let k = text.indexOf('`', j); k >= 0; k = text.indexOf('`', k)) {
        let e = k;
        while (text[e] === '`') e++;
        if (e - k === run) {
          close = k;
          break;
        }
        k = e;
      }
      if (close >= 0 || streaming) {
        const body = text.slice(j, close >= 0 ? close : n);
        flush();
        if (body) items.push(h('code', null, [codeSpan(body)]));
        i = close >= 0 ? close + run : n;
      } else {
        buf += text.slice(i, j);
        i = j;
      }
      continue;
    }
    if (c === '[' || (c === '!' && text[i + 1] === '[')) {
      const image = c === '!';
      const l = scanLink(text, image ? i + 1 : i, streaming);
      if (l) {
        flush();
        const label = inline(l.label, streaming && l.end === n);
        const href = l.pending ? null : safeHref(l.dest);
        if (l.pending) items.push(h('span', { class: 'link-pending' }, label));
        else if (href && image) items.push(linkNode(href, ['Image: ' + (l.label || href)], 'image-link'));
        else if (href) items.push(linkNode(href, label));
        else buf += text.slice(i, l.end); // not a URL we open: keep the source as text
        i = l.end;
        continue;
      }
      buf += c;
      i++;
      continue;
    }
    if (c === '<') {
      const m = /^<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>/.exec(text.slice(i, i + 2048)) ||
        /^<([^\s@<>()]+@[^\s@<>()]+\.[^\s@<>()]+)>/.exec(text.slice(i, i + 512));
      const href = m && safeHref(m[1].includes(':') ? m[1] : 'mailto:' + m[1]);
      if (href) {
        flush();
        items.push(linkNode(href, [m[1]]));
        i += m[0].length;
        continue;
      }
      buf += c;
      i++;
      continue;
    }
    if ((c === 'h' || c === 'H' || c === 'w' || c === 'W') && (i === 0 || !/[\p{L}\p{N}]/u.test(text[i - 1]))) {
      const m = /^(?:https?:\/\/|www\.)[^\s<>]+/i.exec(text.slice(i, i + 2048));
      if (m) {
        const url = trimURL(m[0]);
        const href = safeHref(/^www\./i.test(url) ? 'https://' + url : url);
        if (href && url.length > 8) {
          flush();
          items.push(linkNode(href, [url]));
          i += url.length;
          continue;
        }
      }
    }
    if (c === '*' || c === '_' || c === '~') {
      let j = i;
      while (text[j] === c) j++;
      const count = j - i;
      const before = text[i - 1];
      const after = text[j];
      const left = !isSpace(after) && (!isPunct(after) || isSpace(before) || isPunct(before));
      const right = !isSpace(before) && (!isPunct(before) || isSpace(after) || isPunct(after));
      let open = left;
      let close = right;
      if (c === '_') {
        open = left && (!right || isPunct(before));
        close = right && (!left || isPunct(after));
      }
      if (c === '~' && count > 2) {
        buf += text.slice(i, j);
      } else {
        flush();
        items.push({ delim: c, n: count, orig: count, open, close, atEnd: j === n });
      }
      i = j;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  // A run at the live end may be half of "**" or a closer still to come;
  // showing it would flash asterisks, so it waits for the next token.
  if (streaming && items.at(-1)?.atEnd) items.pop();
  emphasis(items);
  if (streaming) closeOpen(items);
  return finish(items);
}

function codeSpan(s) {
  s = s.replace(/\n/g, ' ');
  return s.length > 2 && s[0] === ' ' && s.at(-1) === ' ' && s.trim() ? s.slice(1, -1) : s;
}

function wrap(d, use, children) {
  if (d === '~') return h('del', null, children);
  return use >= 2 ? h('strong', null, children) : h('em', null, children);
}

/** The CommonMark delimiter algorithm, on a flat list of nodes and runs. */
function emphasis(items) {
  for (let ci = 0; ci < items.length; ci++) {
    const c = items[ci];
    if (!c?.delim || !c.close || c.n === 0) continue;
    let oi = ci - 1;
    for (; oi >= 0; oi--) {
      const o = items[oi];
      if (!o?.delim || o.delim !== c.delim || !o.open || o.n === 0) continue;
      if (c.delim === '~') {
        if (o.n === c.n) break;
        continue;
      }
      if ((o.close || c.open) && (o.orig + c.orig) % 3 === 0 && !(o.orig % 3 === 0 && c.orig % 3 === 0)) continue;
      break;
    }
    if (oi < 0) continue;
    const o = items[oi];
    const use = c.delim === '~' ? c.n : o.n >= 2 && c.n >= 2 ? 2 : 1;
    const inner = items.splice(oi + 1, ci - oi - 1);
    items.splice(oi + 1, 0, wrap(c.delim, use, finish(inner)));
    o.n -= use;
    c.n -= use;
    ci = oi + 2; // where c is now
    if (o.n === 0) {
      items.splice(oi, 1);
      ci--;
    }
    if (c.n === 0) items.splice(ci, 1);
    ci--; // look at the same position again
  }
}

/** While streaming: shows unclosed openers as if closed at the end. */
function closeOpen(items) {
  for (let k = items.length - 1; k >= 0; k--) {
    const d = items[k];
    if (!d?.delim || d.n === 0) continue;
    if (!d.open || (d.delim === '~' && d.n !== 2)) continue;
    const inner = finish(items.splice(k + 1));
    if (inner.length === 0) {
      items.splice(k, 1);
      continue;
    }
    let node = d.delim === '~' ? wrap('~', 2, inner) : wrap('*', d.n, inner);
    if (d.delim !== '~' && d.n >= 3) node = h('strong', null, [node.tag === 'strong' ? h('em', null, inner) : node]);
    items.splice(k, 1, node);
  }
}

/** Turns leftover runs into text and joins neighbouring strings. */
function finish(items) {
  const out = [];
  for (const it of items) {
    const v = it?.delim ? it.delim.repeat(it.n) : it;
    if (v === '') continue;
    if (typeof v === 'string' && typeof out.at(-1) === 'string') out[out.length - 1] += v;
    else out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------- code

const keywords = {
  go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false iota',
  js: 'as async await break case catch class const continue debugger default delete do else export extends false finally for from function if import in instanceof interface let new null of return static super switch this throw true try type typeof undefined var void while with yield',
  py: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return self True try while with yield',
  rust: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while',
  sh: 'if then else elif fi for while do done case esac function in return export local echo exit set cd',
  c: 'auto bool break case catch char class const continue default delete do double else enum extends extern false final float for fun goto if implements import int interface let long namespace new null nullptr override package private protected public register return short signed sizeof static struct super switch template this throw true try typedef union unsigned using val var void volatile while',
  sql: 'select from where and or not insert into values update set delete create table index primary key foreign references join left right inner outer on group by order having limit offset as distinct null is in like between case when then else end',
};
const aliases = {
  golang: 'go', javascript: 'js', mjs: 'js', jsx: 'js', ts: 'js', tsx: 'js', typescript: 'js', json: 'js',
  python: 'py', python3: 'py', rs: 'rust', bash: 'sh', shell: 'sh', zsh: 'sh', console: 'sh', shellscript: 'sh',
  'c++': 'c', cpp: 'c', cc: 'c', h: 'c', java: 'c', cs: 'c', csharp: 'c', kotlin: 'c', kt: 'c', swift: 'c',
  scala: 'c', php: 'c', dart: 'c',
};
const keywordSets = {};

function lexer(lang) {
  const key = aliases[lang] ?? lang;
  if (!keywords[key]) return null;
  const hash = key === 'py' || key === 'sh';
  const comment = key === 'sql' ? '--[^\\n]*' : hash ? '#[^\\n]*' : '\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?(?:\\*\\/|$)';
  const strings = '"(?:[^"\\\\\\n]|\\\\.)*"?|\'(?:[^\'\\\\\\n]|\\\\.)*\'?' + (key === 'go' || key === 'js' ? '|`[^`]*`?' : '');
  keywordSets[key] ??= new Set(keywords[key].split(' '));
  return {
    re: new RegExp(`(${comment})|(${strings})|(\\b\\d[\\d_]*(?:\\.\\d+)?(?:[eE][+-]?\\d+)?\\b|\\b0[xX][0-9a-fA-F]+\\b)|([A-Za-z_$][\\w$]*)(\\s*\\()?`, 'g'),
    kw: keywordSets[key],
    ci: key === 'sql',
  };
}

/** Colours code with a few token classes; unknown languages stay plain. */
function highlight(code, lang) {
  const lx = lexer(lang.toLowerCase());
  if (!lx) return [code];
  const out = [];
  let last = 0;
  const push = (cls, s) => out.push(h('span', { class: cls }, [s]));
  for (const m of code.matchAll(lx.re)) {
    const [tok, com, str, num, id, call] = m;
    let cls = null;
    if (com) cls = 'tok-c';
    else if (str) cls = 'tok-s';
    else if (num) cls = 'tok-n';
    else if (id && lx.kw.has(lx.ci ? id.toLowerCase() : id)) cls = 'tok-k';
    else if (id && call) cls = 'tok-f';
    if (!cls) continue;
    if (m.index > last) out.push(code.slice(last, m.index));
    const word = cls === 'tok-f' ? id : tok;
    push(cls, word);
    last = m.index + word.length;
  }
  if (last < code.length) out.push(code.slice(last));
  return out;
}

// The page's own copy icon, from the sprite in index.html.
const copyIcon = {
  tag: 'svg',
  ns: SVG,
  attrs: { 'aria-hidden': 'true' },
  children: [{ tag: 'use', ns: SVG, attrs: { href: '#i-copy' }, children: [] }],
};

function codeBlock(b) {
  const lang = b.lang.replace(/[^\w+#.-]/g, '').slice(0, 32);
  return h('div', { class: 'code-block' }, [
    h('div', { class: 'code-head' }, [
      h('span', { class: 'code-lang' }, [lang || 'text']),
      h('button', { type: 'button', class: 'copy-code', 'aria-label': `Copy ${lang || 'code'}` }, [copyIcon, h('span', null, ['Copy'])]),
    ]),
    h('pre', null, [h('code', lang ? { class: 'language-' + lang.toLowerCase() } : null, highlight(b.text, lang))]),
  ]);
}

// ---------------------------------------------------------------- vnodes

function toVNode(b) {
  switch (b.type) {
    case 'para':
      return h('p', null, inline(b.text, b.streaming));
    case 'heading':
      return h('h' + b.level, null, inline(b.text, false));
    case 'hr':
      return h('hr');
    case 'code':
      return codeBlock(b);
    case 'quote':
      return h('blockquote', null, b.children.map((c) => toVNode(c)));
    case 'table': {
      const cell = (tag, text, k) => h(tag, b.align[k] ? { class: 'al-' + b.align[k] } : null, inline(text, false));
      return h('div', { class: 'table-wrap' }, [
        h('table', null, [
          h('thead', null, [h('tr', null, b.head.map((t, k) => cell('th', t, k)))]),
          h('tbody', null, b.rows.map((r) => h('tr', null, r.map((t, k) => cell('td', t, k))))),
        ]),
      ]);
    }
    case 'list': {
      const attrs = b.ordered && b.startNum !== 1 ? { start: String(b.startNum) } : null;
      return h(b.ordered ? 'ol' : 'ul', attrs, b.items.map((it) => {
        const kids = [];
        if (it.task !== null) {
          const box = { type: 'checkbox', disabled: '', 'aria-label': it.task ? 'done' : 'not done' };
          if (it.task) box.checked = '';
          kids.push(h('input', box));
        }
        for (const c of it.children) {
          if (!b.loose && c.type === 'para') kids.push(...inline(c.text, c.streaming));
          else kids.push(toVNode(c));
        }
        return h('li', it.task !== null ? { class: 'task' } : null, kids);
      }));
    }
  }
  return h('p', null, ['']);
}

/**
 * parse returns the top-level blocks of text, each with a key that changes
 * whenever its rendering may change and its node tree (built on first use,
 * so that unchanged blocks cost only their key).
 */
export function parse(text, { streaming = false } = {}) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  if (streaming && rePartial.test(lines.at(-1))) lines.pop();
  const blocks = parseBlocks(lines, streaming);
  return blocks.map((b, k) => ({
    key: (streaming && k === blocks.length - 1 ? 's:' : 'f:') + lines.slice(b.start, b.end).join('\n'),
    get node() {
      return toVNode(b);
    },
  }));
}

// ---------------------------------------------------------------- DOM

function create(v) {
  if (typeof v === 'string') return document.createTextNode(v);
  const el = v.ns ? document.createElementNS(v.ns, v.tag) : document.createElement(v.tag);
  if (v.attrs) for (const k in v.attrs) el.setAttribute(k, v.attrs[k]);
  for (const c of v.children) el.appendChild(create(c));
  return el;
}

function patch(parent, i, v) {
  const cur = parent.childNodes[i];
  if (typeof v === 'string') {
    if (cur?.nodeType === Node.TEXT_NODE) {
      if (cur.data === v) return;
      if (v.startsWith(cur.data)) cur.appendData(v.slice(cur.data.length));
      else cur.data = v;
      return;
    }
  } else if (cur?.nodeType === Node.ELEMENT_NODE && cur.localName === v.tag) {
    const want = v.attrs ?? {};
    for (const a of [...cur.attributes]) if (!(a.name in want)) cur.removeAttribute(a.name);
    for (const k in want) if (cur.getAttribute(k) !== want[k]) cur.setAttribute(k, want[k]);
    patchChildren(cur, v.children);
    return;
  }
  const el = create(v);
  if (cur) parent.replaceChild(el, cur);
  else parent.appendChild(el);
}

function patchChildren(parent, vs) {
  for (let i = 0; i < vs.length; i++) patch(parent, i, vs[i]);
  while (parent.childNodes.length > vs.length) parent.lastChild.remove();
}

const rendered = new WeakMap(); // container → keys of its blocks

/**
 * render shows text as Markdown in container, replacing what an earlier
 * call put there and touching only the blocks that changed. Call it with
 * the whole text so far and streaming: true while an answer arrives, and
 * once more with streaming: false at the end.
 */
export function render(container, text, { streaming = false } = {}) {
  const blocks = parse(text, { streaming });
  let keys = rendered.get(container);
  if (!keys || container.childNodes.length !== keys.length) keys = [];
  for (let i = 0; i < blocks.length; i++) {
    if (keys[i] === blocks[i].key && container.childNodes[i]) continue;
    patch(container, i, blocks[i].node);
    keys[i] = blocks[i].key;
  }
  while (container.childNodes.length > blocks.length) container.lastChild.remove();
  keys.length = blocks.length;
  rendered.set(container, keys);
}
