import type { Plain } from "./kustomize.ts";

function isMap(value: unknown): value is Plain {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Helm's merge of user values over a chart's defaults: maps merge key by key, anything else
 * replaces, and null removes the default.
 */
export function coalesce(defaults: Plain, overrides: Plain): Plain {
  const merged: Plain = { ...defaults };
  for (const [key, value] of Object.entries(overrides)) {
    const base = merged[key];
    if (value === null) delete merged[key];
    else if (isMap(value) && isMap(base)) merged[key] = coalesce(base, value);
    else merged[key] = value;
  }
  return merged;
}

/**
 * Dotted paths of keys in `values` the chart's defaults do not have. Below a map the defaults
 * leave empty (`{}`: resources, annotations, ACL users…) any key is the chart's to accept.
 */
export function unknownKeys(values: Plain, defaults: Plain, prefix = ""): string[] {
  return Object.entries(values).flatMap(([key, value]) => {
    const path = `${prefix}${key}`;
    if (!(key in defaults)) return [path];
    const base = defaults[key];
    if (isMap(value) && isMap(base) && Object.keys(base).length > 0)
      return unknownKeys(value, base, `${path}.`);
    return [];
  });
}

/** Every value at every depth, for searches such as "no fixed UID anywhere". */
export function entriesDeep(value: unknown, prefix = ""): [string, unknown][] {
  if (!isMap(value)) return [];
  return Object.entries(value).flatMap(([key, inner]) => [
    [`${prefix}${key}`, inner] as [string, unknown],
    ...entriesDeep(inner, `${prefix}${key}.`),
  ]);
}
