// The images attached to the next chat message: picked with the Attach button, pasted, or
// dropped on the composer, as data: URLs; only while the chosen model takes images.

import { byTestId, h, showError } from './dom.js';
import { acceptsImages } from './models.js';

const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

const composer = document.getElementById('chat-form');
const select = byTestId('model-select');
const errorBox = byTestId('chat-error');
const fileInput = byTestId('attach-image');
const reason = document.getElementById('attach-reason'); // polite live region
const list = document.getElementById('chat-attachments');
const TYPES = fileInput.accept.split(',');

let attachments = []; // data: URLs

export function initAttachments() {
  select.addEventListener('change', updateAttach);
  fileInput.addEventListener('change', () => {
    const files = [...fileInput.files];
    fileInput.value = '';
    add(files);
  });
  composer.addEventListener('paste', (event) => {
    // Only the images: any text in the clipboard pastes as usual.
    const images = [...event.clipboardData.files].filter((file) => TYPES.includes(file.type));
    if (images.length) offer(images, 'pasted');
  });
  composer.addEventListener('dragover', (event) => {
    if (!event.dataTransfer.types.includes('Files')) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = takesImages() ? 'copy' : 'none';
    composer.classList.add('dropping');
  });
  composer.addEventListener('dragleave', (event) => {
    if (!composer.contains(event.relatedTarget)) composer.classList.remove('dropping');
  });
  composer.addEventListener('drop', (event) => {
    composer.classList.remove('dropping');
    if (!event.dataTransfer.files.length) return;
    event.preventDefault(); // else the browser opens the file
    offer([...event.dataTransfer.files], 'dropped');
  });
  updateAttach();
}

/** Enables attaching for a model that takes images; for one that does not, removes the
 * images attached so far, and says so. Called when the model changes. */
export function updateAttach() {
  const ok = takesImages();
  fileInput.disabled = !ok;
  let text = ok ? '' : select.value ? `${select.value} takes text only.` : 'No model selected.';
  if (!ok && attachments.length) {
    const n = attachments.length;
    const which = n === 1 ? 'attached image' : `${n} attached images`;
    text = `${select.value || 'No model'} takes text only: removed the ${which}.`;
    attachments = [];
    showAttachments();
  }
  reason.textContent = text;
}

/** The images for the next message, which are no longer attached. */
export function takeAttachments() {
  const taken = attachments;
  attachments = [];
  showAttachments();
  return taken;
}

/** Attaches `urls` again, ahead of any attached since (a message that could not be sent). */
export function putBackAttachments(urls) {
  attachments = [...urls, ...attachments];
  showAttachments();
}

export function hasAttachments() {
  return attachments.length > 0;
}

function takesImages() {
  return Boolean(select.value) && acceptsImages(select.value);
}

/** Attaches pasted or dropped files: the images among them, if the model takes images. */
function offer(files, how) {
  if (!takesImages()) {
    const what = files.length === 1 ? `${how} image was` : `${how} images were`;
    reason.textContent = `${select.value || 'No model'} takes text only: the ${what} not attached.`;
    return;
  }
  const images = files.filter((file) => TYPES.includes(file.type));
  if (images.length < files.length) showError(errorBox, 'Only PNG, JPEG, GIF and WebP images can be attached.');
  add(images);
}

async function add(files) {
  for (const file of files) {
    if (file.size > MAX_IMAGE_BYTES) {
      showError(errorBox, `${file.name} is larger than 10 MB.`);
      continue;
    }
    try {
      attachments.push(await dataURL(file));
    } catch (error) {
      showError(errorBox, `Could not read ${file.name}: ${error.message}`);
    }
  }
  showAttachments();
}

function dataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showAttachments() {
  list.replaceChildren(
    ...attachments.map((url, index) =>
      h(
        'li',
        {},
        h('img', { src: url, alt: `Image ${index + 1}` }),
        h('button', {
          type: 'button',
          'aria-label': `Remove image ${index + 1}`,
          text: '×',
          onclick: () => {
            attachments.splice(index, 1);
            showAttachments();
          },
        }),
      ),
    ),
  );
}
