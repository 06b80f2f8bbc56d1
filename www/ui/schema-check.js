// A small check of a value against the JSON Schema it was generated under: the required keys are
// there and each property has its declared primitive type. Not a validator; a second opinion on
// the grammar's output that the page can show.

const TYPES = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  integer: (v) => Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null,
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  array: (v) => Array.isArray(v),
};

/** Problems found (empty when none), as short sentences. */
export function checkAgainstSchema(schema, value) {
  const problems = [];
  if (schema?.type && !matches(schema.type, value)) problems.push(`the value is not of type ${schema.type}`);
  if (!TYPES.object(value) || !TYPES.object(schema)) return problems;
  for (const key of schema.required ?? []) {
    if (!Object.hasOwn(value, key)) problems.push(`required key "${key}" is missing`);
  }
  for (const [key, sub] of Object.entries(schema.properties ?? {})) {
    if (Object.hasOwn(value, key) && sub?.type && !matches(sub.type, value[key])) {
      problems.push(`"${key}" is not of type ${[].concat(sub.type).join(' or ')}`);
    }
  }
  return problems;
}

function matches(type, value) {
  return [].concat(type).some((t) => TYPES[t]?.(value) ?? true);
}
