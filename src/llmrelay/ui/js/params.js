// Reading request parameters from form fields: the sampling parameters (Chat and Jobs) and
// the tool definitions (Chat). Each reader throws an Error that says what is wrong.

const WHOLE = new Set(['max_tokens', 'seed']);

/**
 * The parameters set among `names`, each read from `fieldOf(name)` (a number input, or the
 * text input of `stop`); empty fields are left out, so that the model's defaults apply.
 */
export function readParams(names, fieldOf) {
  const params = {};
  for (const name of names) {
    const field = fieldOf(name);
    const value = field.value;
    if (value === '') continue;
    if (!field.checkValidity()) throw new Error(`${name}: ${field.validationMessage}`);
    if (name === 'stop') params.stop = readStop(value);
    else params[name] = WHOLE.has(name) ? parseInt(value, 10) : Number(value);
  }
  return params;
}

/** `stop`: a string, or a JSON array of up to 4 strings. */
function readStop(value) {
  if (!value.trimStart().startsWith('[')) return value;
  let stop;
  try {
    stop = JSON.parse(value);
  } catch {
    throw new Error('stop: a list must be a JSON array of strings, such as ["END", "\\n\\n"].');
  }
  if (!Array.isArray(stop) || !stop.every((item) => typeof item === 'string') || stop.length > 4) {
    throw new Error('stop: a list must be a JSON array of up to 4 strings.');
  }
  return stop;
}

/**
 * The tool definitions in `text`, or null when it is empty. Takes OpenAI's tools array; a
 * single tool, or bare functions ({name, parameters}), are accepted and wrapped.
 */
export function readTools(text) {
  if (!text.trim()) return null;
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (error) {
    throw new Error(`Tools: not valid JSON (${error.message}).`);
  }
  if (!Array.isArray(tools)) tools = [tools];
  return tools.map((tool, index) => {
    if (!tool || typeof tool !== 'object') throw new Error(`Tools: item ${index} is not an object.`);
    const fn = tool.function ?? tool;
    if (tool.type !== undefined && tool.type !== 'function') {
      throw new Error(`Tools: item ${index} has type "${tool.type}"; only "function" tools exist.`);
    }
    if (typeof fn.name !== 'string' || !/^[\w-]{1,64}$/.test(fn.name)) {
      throw new Error(`Tools: item ${index} needs a function name of letters, digits, _ or - (at most 64).`);
    }
    if (
      fn.parameters !== undefined &&
      (typeof fn.parameters !== 'object' || fn.parameters === null || Array.isArray(fn.parameters))
    ) {
      throw new Error(`Tools: the parameters of "${fn.name}" must be a JSON schema object.`);
    }
    return { type: 'function', function: fn };
  });
}
