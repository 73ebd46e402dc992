// The models the gateway serves (GET /v1/models), shared by the model pickers.

import { getJSON } from './api.js';
import { h } from './dom.js';

let models = [];

/** Loads the model list; throws the ApiError when it cannot (a 401 opens the key dialog). */
export async function loadModels() {
  models = (await getJSON('/v1/models')).data || [];
  return models;
}

/** Whether the model takes images (a missing input_modalities means text only). */
export function acceptsImages(id) {
  const model = models.find((candidate) => candidate.id === id);
  return Boolean(model && (model.input_modalities || ['text']).includes('image'));
}

/**
 * Fills a <select> with the models, keeping its current choice when that model is still
 * served, else taking `preferred`, else the first.
 */
export function fillModelSelect(select, preferred) {
  const current = select.value || preferred;
  select.replaceChildren(...models.map((model) => h('option', { value: model.id, text: model.id })));
  if (!models.length) {
    select.append(h('option', { value: '', text: 'No models', disabled: true }));
    return;
  }
  const ids = models.map((model) => model.id);
  select.value = ids.includes(current) ? current : ids.includes(preferred) ? preferred : ids[0];
}

/** The model ids, in the gateway's order. */
export function modelIds() {
  return models.map((model) => model.id);
}
