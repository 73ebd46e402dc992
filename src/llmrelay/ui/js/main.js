// The playground's start: wires every tab, then loads the models, which also tells whether
// the gateway wants a key (a 401 opens the key dialog). The page never stays blank: a
// failure shows in the banner, with what to do.

import { initChat, setChatModels } from './chat.js';
import { initCompare, setCompareModels } from './compare.js';
import { initInspector } from './inspector.js';
import { initJobs, refreshJobs, setJobModels } from './jobs.js';
import { initKeys, openKeyDialog } from './keys.js';
import { loadModels } from './models.js';
import { initRequests, refreshRequests } from './requests.js';
import { initRouter, showView } from './router.js';
import { initUsage, refreshUsage } from './usage.js';

const banner = document.getElementById('banner');
const bannerText = document.getElementById('banner-text');
const bannerAction = document.getElementById('banner-action');

initInspector();
initChat();
initCompare();
initJobs();
initRequests();
initUsage();
initKeys({ onChange: start });
initRouter({ chat: null, compare: null, jobs: refreshJobs, requests: refreshRequests, usage: refreshUsage });
showView({ refresh: false });
start();

/** Loads the models into every picker, then refreshes the tab on show. */
async function start() {
  try {
    await loadModels();
  } catch (error) {
    if (error.status === 401) {
      notice('This gateway requires an API key.', 'Set API key', () =>
        openKeyDialog('This gateway requires an API key.'),
      );
    } else {
      notice(`Could not load the models: ${error.message}`, 'Retry', start);
    }
    return;
  }
  banner.hidden = true;
  setChatModels();
  setCompareModels();
  setJobModels();
  showView();
}

function notice(text, action, onAction) {
  bannerText.textContent = text;
  bannerAction.textContent = action;
  bannerAction.onclick = onAction;
  bannerAction.hidden = false;
  banner.hidden = false;
}
