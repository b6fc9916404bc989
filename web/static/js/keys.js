// keys.js: the API key of a server that needs one, asked for in a dialog
// and kept in this browser only (store.js), sent as Authorization: Bearer
// with every request of the client (over /ws, in Sec-WebSocket-Protocol).

import { $, ui } from './page.js';

/**
 * Keys wires the key dialog to store and client. ask(reason) resolves
 * true once a key is saved (one dialog however many ask at once);
 * onChange is called after the key button's dialog saved one.
 */
export class Keys {
  #asked = null;

  constructor(store, client, { onChange }) {
    this.store = store;
    this.client = client;
    this.use(store.apiKey);
    ui.keyForm.addEventListener('submit', () => {
      store.apiKey = ui.keyInput.value.trim();
      this.use(store.apiKey);
    });
    $('key-cancel').addEventListener('click', () => ui.keyDialog.close('cancel'));
    $('key-forget').addEventListener('click', () => {
      store.apiKey = '';
      this.use('');
      ui.keyDialog.close('forget');
    });
    ui.keyButton.addEventListener('click', () => this.ask('').then((ok) => ok && onChange()));
  }

  use(key) {
    this.client.headers = key ? { Authorization: `Bearer ${key}` } : {};
    ui.keyButton.hidden = !key;
  }

  /** Asks for an API key; resolves true once one is saved. */
  ask(reason) {
    if (this.#asked) return this.#asked;
    ui.keyReason.textContent = (reason ? reason + ' ' : '') + 'The key is kept in this browser only.';
    ui.keyInput.value = this.store.apiKey;
    $('key-forget').hidden = !this.store.apiKey;
    ui.keyDialog.showModal();
    this.#asked = new Promise((resolve) => {
      ui.keyDialog.addEventListener('close', () => {
        this.#asked = null;
        resolve(ui.keyDialog.returnValue === 'save');
      }, { once: true });
    });
    return this.#asked;
  }
}
