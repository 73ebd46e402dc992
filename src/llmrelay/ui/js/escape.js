// Escaping text for HTML: everything the model or the gateway says goes through here before
// it becomes markup.

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (char) => ENTITIES[char]);
}
