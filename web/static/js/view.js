// view.js: draws the conversation shown (page.conv of page.js): its
// branch of messages, each answer's text, status and actions, the < 1/2 >
// between versions, and the composer and network state around them.

import { render } from './markdown.js';
import { el, icon } from './dom.js';
import { live, page, ui } from './page.js';

export function messageEl(m) {
  let li;
  if (m.role === 'user') {
    // Shown as text, exactly as typed: never parsed, never HTML.
    li = el('li', { class: 'msg user' }, el('h2', { class: 'visually-hidden', text: 'You said:' }), el('div', { class: 'bubble', text: m.content }));
  } else {
    li = el('li', { class: 'msg assistant' },
      el('div', { class: 'avatar' }, icon('logo', 'logo')),
      el('div', { class: 'body' },
        el('h2', { class: 'visually-hidden', text: 'Sluice said:' }),
        el('div', { class: 'thinking', 'aria-hidden': 'true' }, el('span'), el('span'), el('span')),
        el('div', { class: 'md' }),
        el('div', { class: 'msg-status' }),
        el('div', { class: 'msg-foot' }, el('div', { class: 'actions' }))));
  }
  li.dataset.id = m.id;
  const sibs = page.conv.siblings(m);
  if (sibs.length > 1) {
    const i = sibs.indexOf(m);
    const what = m.role === 'assistant' ? 'answer' : 'message';
    const nav = el('nav', { class: 'branch', 'aria-label': `Versions of this ${what}` },
      el('button', { type: 'button', class: 'act', 'data-action': 'prev', 'aria-label': `Previous ${what}`, disabled: i === 0 }, icon('left')),
      el('span', { class: 'branch-pos', text: `${i + 1}/${sibs.length}` }),
      el('button', { type: 'button', class: 'act', 'data-action': 'next', 'aria-label': `Next ${what}`, disabled: i === sibs.length - 1 }, icon('right')));
    // Beside an answer's actions, as ChatGPT has it; under a question.
    const foot = li.querySelector('.msg-foot');
    if (foot) foot.prepend(nav);
    else li.append(nav);
  }
  page.views.set(m, li);
  if (m.role === 'assistant') drawMessage(m);
  return li;
}

/** Redraws an answer's text and status. */
export function drawMessage(m) {
  const li = page.views.get(m);
  if (!li) return;
  const streaming = m.status === 'streaming';
  li.dataset.status = m.status;
  if (m.streamId) li.dataset.streamId = m.streamId;
  li.classList.toggle('waiting', streaming && !m.content);
  li.setAttribute('aria-busy', String(streaming));
  render(li.querySelector('.md'), m.content, { streaming });
  drawStatus(m);
  if (page.stick) scrollToEnd();
}

export function drawStatus(m) {
  const li = page.views.get(m);
  if (!li) return;
  const l = live.get(page.conv?.id);
  const net = l?.msg === m ? l.net : '';
  li.dataset.net = net;
  const box = li.querySelector('.msg-status');
  box.textContent = '';
  box.className = 'msg-status';
  let text = '';
  let kind = 'muted';
  let action = null;
  if (net === 'reconnecting') {
    const n = l.netInfo?.attempt ?? 1;
    text = `Connection lost. Reconnecting${n > 1 ? ` (attempt ${n})` : ''}…`;
    kind = 'warn';
  } else if (net === 'resumed') {
    text = l.reattached ? 'Reattached to the answer in progress.' : 'Reconnected: the answer continues where it stopped.';
    kind = 'ok';
  } else if (m.status === 'stopped') {
    text = 'Stopped.';
  } else if (m.status === 'error') {
    text = m.error || 'Something went wrong.';
    kind = 'error';
    action = ['Retry', 'retry'];
  } else if (m.status === 'expired') {
    text = m.error || 'The rest of this answer is no longer kept on the server.';
    kind = 'warn';
  } else if (m.status === 'interrupted') {
    const l2 = page.conv?.lives.find((x) => x.msg === m);
    if (l2 || page.conv?.local) {
      text = (m.error || 'The connection was lost.') + ' The answer may have gone on without you.';
      action = ['Reconnect', 'reconnect'];
    } else {
      text = 'The server stopped before this answer was complete.';
    }
    kind = 'error';
  } else if (m.status === 'done' && m.finishReason === 'length') {
    text = 'The answer reached its length limit.';
  }
  if (!text) return;
  box.classList.add('show', kind);
  box.append(el('span', { text }));
  if (action) box.append(el('button', { type: 'button', class: 'link-btn', 'data-action': action[1], text: action[0] }));
}

/** Puts Copy and Regenerate under the answers that are finished. */
export function drawActions() {
  if (!page.conv) return;
  const branch = page.conv.branch();
  const last = branch.at(-1);
  for (const m of branch) {
    const li = page.views.get(m);
    if (!li || m.role !== 'assistant') continue;
    const box = li.querySelector('.actions');
    box.textContent = '';
    if (m.status === 'streaming') continue;
    if (m.content) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'copy', 'aria-label': 'Copy answer', title: 'Copy' }, icon('copy')));
    }
    if (m === last && !live.has(page.conv.id)) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'regenerate', 'aria-label': 'Regenerate answer', title: 'Regenerate' }, icon('retry')));
    }
  }
}

export function drawConversation() {
  const top = ui.scroller.scrollTop;
  const wasStuck = page.stick;
  ui.messages.textContent = '';
  page.views = new Map();
  const msgs = page.conv?.branch() ?? [];
  ui.empty.hidden = msgs.length > 0 || (page.conv && !page.conv.loaded);
  for (const m of msgs) ui.messages.append(messageEl(m));
  drawActions();
  document.title = page.conv ? `${page.conv.title} · Sluice` : 'Sluice';
  const model = page.conv?.model;
  if (model && [...ui.model.options].some((o) => o.value === model)) ui.model.value = model;
  if (drawConversation.shown === page.conv && !wasStuck) {
    ui.scroller.scrollTop = top; // a redraw of the same chat keeps the reader's place
  } else {
    page.stick = true;
    scrollToEnd();
  }
  drawConversation.shown = page.conv;
}

// ------------------------------------------------------------ page chrome

export function drawNet() {
  const l = page.conv && live.get(page.conv.id);
  let text = '';
  let kind = '';
  if (navigator.onLine === false) [text, kind] = ['Offline', 'warn'];
  else if (l?.net === 'reconnecting') [text, kind] = ['Reconnecting…', 'warn'];
  else if (l?.net === 'resumed') [text, kind] = ['Resumed', 'ok'];
  ui.net.hidden = !text;
  ui.net.textContent = text;
  ui.net.className = 'net ' + kind;
}

export function drawComposer() {
  const busy = !!(page.conv && live.has(page.conv.id));
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.send.disabled = !ui.input.value.trim();
  ui.composer.classList.toggle('busy', busy);
}

export function scrollToEnd() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

