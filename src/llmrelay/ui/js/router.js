// Tabs with hash routing: #chat, #compare, #jobs, #requests, #usage (#/chat works too; no
// hash is Chat). Any other hash (an in-page link) leaves the tab as it is.

const DEFAULT = 'chat';

let views = {};
let shown = DEFAULT;

/** `routes` maps each tab's name to what runs each time it is shown (or null). */
export function initRouter(routes) {
  views = routes;
  window.addEventListener('hashchange', () => named() && showView({ focus: true }));
  // The skip link focuses the content itself, leaving the hash (and so the tab) as it is.
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    document.getElementById('main').focus();
  });
}

/** The tab the hash names (no hash: Chat), if it names one. */
function named() {
  const name = window.location.hash.replace(/^#\/?/, '') || DEFAULT;
  return name in views ? name : null;
}

/** Shows the tab the hash names (else the one shown); with `refresh`, runs its refresh. */
export function showView({ focus = false, refresh = true } = {}) {
  const name = (shown = named() || shown);
  for (const view of Object.keys(views)) {
    document.getElementById(`view-${view}`).hidden = view !== name;
    const link = document.querySelector(`[data-testid="nav-${view}"]`);
    if (view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · llmrelay playground`;
  if (focus) document.getElementById('main').focus({ preventScroll: true });
  if (refresh && views[name]) views[name]();
}
