// The light/dark theme. A classic script loaded in <head>, so that the theme is on the
// page before its first paint: the system's preference, unless the user chose one here.
// Changes are announced with a "llmrelay:theme" event on document (the charts redraw).
'use strict';
{
  const STORAGE = 'llmrelay.theme';
  const root = document.documentElement;
  const system = window.matchMedia('(prefers-color-scheme: dark)');

  const stored = () => {
    const value = localStorage.getItem(STORAGE);
    return value === 'light' || value === 'dark' ? value : null;
  };

  const apply = (theme) => {
    root.dataset.theme = theme;
    const button = document.getElementById('theme-toggle');
    if (button) {
      const other = theme === 'dark' ? 'light' : 'dark';
      button.setAttribute('aria-label', `Switch to ${other} theme`);
      button.title = `Switch to ${other} theme`;
    }
    document.dispatchEvent(new CustomEvent('llmrelay:theme', { detail: { theme } }));
  };

  apply(stored() || (system.matches ? 'dark' : 'light'));

  // Follow the system while the user has not chosen.
  system.addEventListener('change', (event) => {
    if (!stored()) apply(event.matches ? 'dark' : 'light');
  });

  document.addEventListener('DOMContentLoaded', () => {
    apply(root.dataset.theme);
    document.getElementById('theme-toggle').addEventListener('click', () => {
      const next = root.dataset.theme === 'dark' ? 'light' : 'dark';
      localStorage.setItem(STORAGE, next);
      apply(next);
    });
  });
}
