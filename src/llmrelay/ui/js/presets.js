// The schema presets of the Jobs tab: a prompt and the JSON schema its answer must match.

export const PRESETS = {
  recipe: {
    label: 'Recipe',
    prompt: 'A simple tomato soup recipe for four people.',
    schema: {
      type: 'object',
      properties: {
        title: { type: 'string' },
        servings: { type: 'integer', minimum: 1 },
        ingredients: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              quantity: { type: 'number' },
              unit: { type: 'string' },
            },
            required: ['name', 'quantity', 'unit'],
            additionalProperties: false,
          },
        },
        steps: { type: 'array', items: { type: 'string' } },
      },
      required: ['title', 'servings', 'ingredients', 'steps'],
      additionalProperties: false,
    },
  },
  contact: {
    label: 'Contact card',
    prompt:
      'Extract the contact details: "Hi, this is Ada Lovelace, head of research at Analytical ' +
      'Engines Ltd. Reach me at ada@example.com or +44 20 7946 0000."',
    schema: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        email: { type: 'string' },
        phone: { type: 'string' },
        company: { type: 'string' },
        role: { type: 'string' },
      },
      required: ['name', 'email', 'phone', 'company', 'role'],
      additionalProperties: false,
    },
  },
  sentiment: {
    label: 'Review sentiment',
    prompt:
      'Classify this review: "The soup arrived cold and late, but the bread was wonderful and ' +
      'the staff apologised."',
    schema: {
      type: 'object',
      properties: {
        sentiment: { type: 'string', enum: ['positive', 'neutral', 'mixed', 'negative'] },
        confidence: { type: 'number', minimum: 0, maximum: 1 },
        reasons: { type: 'array', items: { type: 'string' } },
      },
      required: ['sentiment', 'confidence', 'reasons'],
      additionalProperties: false,
    },
  },
};
