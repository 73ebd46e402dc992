// Tabs with hash routing: #chat, #compare, #jobs, #requests, #usage (#/chat works too).

const DEFAULT = 'chat';

let views = {};

/** `routes` maps each tab's name to what runs each time it is shown (or null). */
export function initRouter(routes) {
  views = routes;
  window.addEventListener('hashchange', () => showView({ focus: true }));
}

export function currentView() {
  const name = window.location.hash.replace(/^#\/?/, '');
  return name in views ? name : DEFAULT;
}

/** Shows the tab the hash names; with `refresh`, runs its refresh. */
export function showView({ focus = false, refresh = true } = {}) {
  const name = currentView();
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
