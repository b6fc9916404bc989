// page.js: what the chat page's modules share: its elements, its state
// (the conversation shown, the answers streaming), and the small ways it
// speaks to the person (announcements for screen readers, toasts).

import { el } from './dom.js';

export const $ = (id) => document.getElementById(id);
export const ui = {
  app: $('app'), scrim: $('scrim'), menu: $('menu'), sidebarClose: $('sidebar-close'),
  newChat: $('new-chat'), newChatTop: $('new-chat-top'), list: $('conversations'), noChats: $('no-chats'),
  search: $('search'), more: $('more-chats'), importBox: $('import'), importText: $('import-text'),
  main: $('main'), model: $('model'), net: $('net'), scroller: $('scroller'), empty: $('empty'),
  messages: $('messages'), jump: $('jump'), composer: $('composer'), input: $('input'), send: $('send'),
  stop: $('stop'), toast: $('toast'), announcer: $('announcer'), keyButton: $('key-button'),
  keyDialog: $('key-dialog'), keyForm: $('key-form'), keyInput: $('key-input'), keyReason: $('key-reason'),
};

/**
 * The page's state. conv: the conversation shown (a Chat of chats.js),
 * null for a new chat not yet sent; views: the element of each message
 * shown; stick: whether the view follows the end of the conversation as it
 * grows.
 */
export const page = { conv: null, views: new Map(), stick: true };

/** Answers streaming now (app.js's live records), by conversation ID. */
export const live = new Map();

export function announce(text) {
  ui.announcer.textContent = '';
  setTimeout(() => (ui.announcer.textContent = text), 50);
}

let toastTimer = 0;
export function toast(text, action, onAction, ms) {
  clearTimeout(toastTimer);
  ui.toast.textContent = '';
  ui.toast.append(el('span', { text }));
  if (action) {
    const b = el('button', { type: 'button', class: 'toast-action', text: action });
    b.addEventListener('click', () => {
      ui.toast.hidden = true;
      onAction();
    });
    ui.toast.append(b);
  }
  ui.toast.hidden = false;
  toastTimer = setTimeout(() => (ui.toast.hidden = true), ms ?? (action ? 8000 : 3000));
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API outside secure contexts: select and copy instead.
    const ta = el('textarea', { class: 'clip', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

