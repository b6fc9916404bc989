// sidebar.js: the list of chats, as the server keeps them: search, rename,
// delete with undo, more on demand. It draws what the server last said,
// plus what this page did since (a new chat, a rename), and reloads when
// told (the change feed, focus); app.js owns the rest of the page.
//
// A delete is real only when its undo window has passed: until then the
// chat is hidden here, and Undo shows it again without the server having
// known. A page closed within the window sends the delete as it goes
// (keepalive), so that what the person saw is what stays.

import { el, icon } from './dom.js';

/** How long Undo is offered after a delete. */
export const UNDO_MS = 8000;
const SEARCH_DELAY_MS = 200;

function dayGroup(t) {
  const d = new Date(t);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const days = Math.floor((today - new Date(d.getFullYear(), d.getMonth(), d.getDate())) / 864e5);
  if (days <= 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days < 7) return 'Previous 7 days';
  if (days < 30) return 'Previous 30 days';
  return 'Older';
}

/**
 * Sidebar draws ui.list. Hooks (all required):
 *   source        ServerChats or MemoryChats (chats.js)
 *   current()     the ID of the chat shown, or null
 *   isLive(id)    whether an answer streams in chat id here
 *   toast(text, action, onAction, ms)
 *   error(text, err)   reports a failed call
 *   deleted(id)   chat id is gone (deleted here, for real, or elsewhere)
 *   renamed(id, title)
 */
export class Sidebar {
  heads = [];
  #more = null;
  #q = '';
  #pending = new Map(); // id → {timer, head}
  #loading = null;
  #again = false;
  #searchTimer = 0;
  #failed = '';
  #renaming = ''; // the chat whose title is a text box: the list is not redrawn under it

  constructor(ui, hooks) {
    this.ui = ui;
    this.h = hooks;
    ui.list.addEventListener('click', (e) => this.#click(e));
    ui.list.addEventListener('dblclick', (e) => {
      const a = e.target.closest('.conv-link');
      if (a) this.rename(a.dataset.id);
    });
    ui.search.addEventListener('input', () => {
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => {
        this.#q = ui.search.value.trim();
        this.reload();
      }, SEARCH_DELAY_MS);
    });
    ui.search.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && ui.search.value) {
        e.stopPropagation();
        ui.search.value = '';
        this.#q = '';
        this.reload();
      }
    });
    ui.more.addEventListener('click', () => this.#loadMore());
  }

  get searching() {
    return this.#q !== '';
  }

  /** Reloads the list from the source; calls made meanwhile coalesce into one more. */
  reload() {
    if (this.#loading) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = (async () => {
      try {
        do {
          this.#again = false;
          const q = this.#q;
          const { heads, next } = await this.h.source.list(q);
          if (q !== this.#q) this.#again = true;
          this.heads = heads;
          this.#more = next;
          this.#failed = '';
        } while (this.#again);
      } catch (err) {
        this.#failed = err.message;
        throw err;
      } finally {
        this.#loading = null;
        this.draw();
      }
    })();
    return this.#loading;
  }

  async #loadMore() {
    if (!this.#more) return;
    try {
      const { heads, next } = await this.#more();
      const have = new Set(this.heads.map((h) => h.id));
      this.heads.push(...heads.filter((h) => !have.has(h.id)));
      this.#more = next;
      this.draw();
    } catch (err) {
      this.h.error('Could not load more chats', err);
    }
  }

  /** Puts head first in the list (a chat just made or changed here). */
  upsert(head) {
    if (this.searching) return;
    this.heads = [head, ...this.heads.filter((h) => h.id !== head.id)];
    this.draw();
  }

  draw() {
    if (this.#renaming) return;
    const { ui } = this;
    const items = this.heads.filter((h) => !this.#pending.has(h.id));
    const current = this.h.current();
    ui.list.textContent = '';
    let group = '';
    for (const e of items) {
      const g = this.searching ? 'Results' : dayGroup(e.updatedAt);
      if (g !== group) {
        group = g;
        ui.list.append(el('li', { class: 'conv-group', role: 'presentation', text: g }));
      }
      const active = current === e.id;
      const a = el('a', { class: 'conv-link', href: '#/c/' + e.id, 'data-id': e.id, 'aria-current': active ? 'page' : null },
        el('span', { class: 'conv-title', text: e.title }));
      if (this.h.isLive(e.id)) a.append(el('span', { class: 'conv-live', title: 'Answering' }, el('span', { class: 'visually-hidden', text: ' (answering)' })));
      const ren = el('button', { type: 'button', class: 'conv-act conv-rename', 'data-id': e.id, 'aria-label': `Rename chat: ${e.title}`, title: 'Rename' }, icon('edit'));
      const del = el('button', { type: 'button', class: 'conv-act conv-delete', 'data-id': e.id, 'aria-label': `Delete chat: ${e.title}`, title: 'Delete' }, icon('trash'));
      ui.list.append(el('li', { class: 'conv-item' + (active ? ' active' : ''), 'data-id': e.id }, a, ren, del));
    }
    ui.more.hidden = !this.#more;
    ui.noChats.hidden = items.length > 0;
    ui.noChats.textContent = this.#failed
      ? `Your chats could not be loaded: ${this.#failed}`
      : this.searching
        ? `No chats match “${this.#q}”.`
        : this.h.source.local
          ? 'This server keeps no chats: they last until you leave the page.'
          : 'Your chats are kept on this Sluice server.';
  }

  #click(e) {
    const del = e.target.closest('.conv-delete');
    if (del) return this.remove(del.dataset.id);
    const ren = e.target.closest('.conv-rename');
    if (ren) return this.rename(ren.dataset.id);
  }

  /** Turns a chat's title into a text box: Enter saves, Escape cancels. */
  rename(id) {
    const li = this.ui.list.querySelector(`.conv-item[data-id="${CSS.escape(id)}"]`);
    const head = this.heads.find((h) => h.id === id);
    if (!li || !head || li.querySelector('.conv-rename-input')) return;
    const input = el('input', { class: 'conv-rename-input', type: 'text', maxlength: '200', 'aria-label': 'Chat title' });
    input.value = head.title;
    li.replaceChildren(input);
    this.#renaming = id;
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      this.#renaming = '';
      const title = input.value.trim();
      if (save && title && title !== head.title) {
        const before = head.title;
        head.title = title;
        this.h.renamed(id, title);
        this.draw();
        try {
          await this.h.source.rename({ id }, title);
        } catch (err) {
          head.title = before;
          this.h.renamed(id, before);
          this.h.error('Could not rename the chat', err);
        }
      }
      this.draw();
      this.ui.list.querySelector(`.conv-link[data-id="${CSS.escape(id)}"]`)?.focus();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        finish(true);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  /** Hides chat id at once and deletes it for real when Undo has not been pressed in time. */
  remove(id) {
    const head = this.heads.find((h) => h.id === id);
    if (!head || this.#pending.has(id)) return;
    const next = this.ui.list.querySelector(`.conv-item[data-id="${CSS.escape(id)}"]`)?.nextElementSibling?.querySelector('.conv-link');
    const timer = setTimeout(() => this.#commit(id), UNDO_MS);
    this.#pending.set(id, { timer, head });
    this.h.deleted(id, { pending: true });
    this.draw();
    const target = next && this.ui.list.querySelector(`.conv-link[data-id="${CSS.escape(next.dataset.id)}"]`);
    (target ?? this.ui.newChat).focus();
    this.h.toast(`Deleted “${head.title}”.`, 'Undo', () => {
      const p = this.#pending.get(id);
      if (!p) return;
      clearTimeout(p.timer);
      this.#pending.delete(id);
      this.draw();
    }, UNDO_MS);
  }

  async #commit(id, { keepalive = false } = {}) {
    const p = this.#pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.#pending.delete(id);
    this.heads = this.heads.filter((h) => h.id !== id);
    this.h.deleted(id, { pending: false });
    try {
      await this.h.source.remove(id, { keepalive });
    } catch (err) {
      if (err?.status !== 404) this.h.error('Could not delete the chat', err);
    }
    this.draw();
  }

  /** Sends every delete still waiting for its undo window: the page is going away. */
  flushDeletes() {
    for (const id of [...this.#pending.keys()]) this.#commit(id, { keepalive: true });
  }

  /** Whether chat id is deleted here, its undo window still open. */
  pendingDelete(id) {
    return this.#pending.has(id);
  }

  /** Forgets chat id, deleted elsewhere. */
  gone(id) {
    const p = this.#pending.get(id);
    if (p) clearTimeout(p.timer);
    this.#pending.delete(id);
    this.heads = this.heads.filter((h) => h.id !== id);
    this.draw();
  }
}
