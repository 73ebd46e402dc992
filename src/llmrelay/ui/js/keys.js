// The API key dialog: opened by the header's key button, and by any 401 from the API.

import { apiKey, onUnauthorized, setApiKey } from './api.js';
import { byTestId } from './dom.js';

const dialog = byTestId('key-dialog');
const message = byTestId('key-message');
const input = byTestId('key-input');
const button = byTestId('key-button');

/** Wires the dialog; `onChange` runs after the key was saved or forgotten. */
export function initKeys({ onChange }) {
  dialog.querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    close();
    onChange();
  });
  document.getElementById('key-forget').addEventListener('click', () => {
    setApiKey('');
    close();
    onChange();
  });
  document.getElementById('key-cancel').addEventListener('click', close);
  button.addEventListener('click', () =>
    openKeyDialog(
      apiKey()
        ? 'This page sends the key below with every request. Change it, or forget it.'
        : 'Set the API key this page sends with every request, if the gateway requires one.',
    ),
  );
  onUnauthorized((error) =>
    openKeyDialog(apiKey() ? `The key was refused: ${error.message}` : 'This gateway requires an API key.'),
  );
  showKeyState();
}

/** Opens the dialog with `text` (or updates its text, when it is open already). */
export function openKeyDialog(text) {
  message.textContent = text;
  if (dialog.open) return;
  input.value = apiKey();
  document.getElementById('key-forget').hidden = !apiKey();
  dialog.showModal();
  input.focus();
  input.select();
}

function close() {
  dialog.close();
  showKeyState();
}

function showKeyState() {
  const set = Boolean(apiKey());
  button.textContent = set ? 'API key' : 'Set API key';
  button.classList.toggle('key-set', set);
  button.title = set ? 'An API key is set: change or forget it' : 'No API key is set';
}
