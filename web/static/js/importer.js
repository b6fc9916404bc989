// importer.js: the chats a browser kept itself, before the server kept
// them (store.js's legacyChats), offered once for import into the server.
// Taken or declined, the offer is never made again, in this tab or
// another; an import that fails part way keeps what it could not send and
// makes the offer again.

import { $, toast, ui } from './page.js';
import { titleOf } from './store.js';

/**
 * Importer shows the offer in ui.importBox. Hooks: local() (the server
 * keeps no chats: nothing to offer), failed(what, err), imported() (the
 * list has new chats).
 */
export class Importer {
  constructor(store, client, hooks) {
    this.store = store;
    this.client = client;
    this.h = hooks;
    $('import-yes').addEventListener('click', () => this.#import());
    $('import-no').addEventListener('click', () => {
      store.claimImport();
      ui.importBox.hidden = true;
    });
    store.onImportClaimed(() => this.offer());
  }

  /** Shows the offer if there is anything to import. */
  offer() {
    const old = this.h.local() ? [] : this.store.legacyChats();
    ui.importBox.hidden = old.length === 0;
    if (!old.length) return;
    const them = old.length === 1 ? 'it' : 'them';
    ui.importText.textContent = `This browser holds ${count(old.length)} from before the server kept chats. Import ${them} to the server?`;
  }

  async #import() {
    ui.importBox.hidden = true;
    const old = this.store.legacyChats();
    if (!this.store.claimImport()) return; // another tab took it
    const done = [];
    let error = null;
    for (const c of old) {
      const items = c.messages
        .filter((m) => m?.content && (m.role === 'user' || m.role === 'assistant'))
        .map((m) => ({ type: 'message', role: m.role, content: String(m.content) }));
      try {
        await this.client.conversations.create({ title: c.title || titleOf(items[0]?.content ?? ''), items });
        done.push(c.id);
      } catch (err) {
        error = err;
      }
    }
    this.store.dropLegacy(done);
    if (error) {
      this.store.releaseImport();
      this.h.failed(`${old.length - done.length} of ${count(old.length)} could not be imported`, error);
    } else {
      toast(`Imported ${count(done.length)}.`);
    }
    this.h.imported();
  }
}

function count(n) {
  return n === 1 ? '1 chat' : `${n} chats`;
}
