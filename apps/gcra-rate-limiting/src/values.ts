import { deprecatedAliases, type SettingName, settings } from "./settings.ts";

/**
 * The parsers of single environment values (numbers, durations, sizes, choices), each failing
 * with a {@link ConfigError} that names the variable and the form {@link settings} says it accepts.
 */

/** A configuration value that cannot be used; the message is one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** A stable identifier, as every error of the workspace carries. */
  readonly code = "CONFIG_INVALID";
  readonly variable: string;
  constructor(variable: string, value: string, accepted: string, options?: { cause?: unknown }) {
    super(`${variable}=${JSON.stringify(value)} is invalid: expected ${accepted}`, options);
    this.variable = variable;
  }
}

export type Alias = keyof typeof deprecatedAliases;

/** A setting's name, or the deprecated alias its value was read from (errors name what was set). */
export type Source = SettingName | Alias;

const settingOf = (source: Source): SettingName =>
  source in deprecatedAliases ? deprecatedAliases[source as Alias] : (source as SettingName);

/** Throws the {@link ConfigError} of `name`'s accepted form. */
export function fail(name: Source, raw: string): never {
  throw new ConfigError(name, raw, settings[settingOf(name)].accepted);
}

export function parseInteger(name: Source, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(raw.trim())) fail(name, raw);
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) fail(name, raw);
  return value;
}

export function parseChoice<T extends string>(name: SettingName, raw: string, choices: readonly T[]): T {
  const value = raw.trim().toLowerCase();
  if (!(choices as readonly string[]).includes(value)) fail(name, raw);
  return value as T;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `1500ms`, `1m`, `0.5s`, `1h`; a bare number is seconds. */
export function parseDuration(name: SettingName, raw: string, minMs: number, maxMs: number): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!match) fail(name, raw);
  const ms = Math.round(Number(match[1]) * (durationUnits[match[2] ?? "s"] ?? 1000));
  if (ms < minMs || ms > maxMs) fail(name, raw);
  return ms;
}

/** A number in (0, 1]: `0.5`, `.25`, `1`. */
export function parseRatio(name: SettingName, raw: string): number {
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(raw.trim())) fail(name, raw);
  const value = Number(raw.trim());
  if (!(value > 0 && value <= 1)) fail(name, raw);
  return value;
}

const sizeUnits: Record<string, number> = { "": 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** A whole number of bytes with an optional binary unit: `98304`, `96KiB`, `16MiB`, `1GiB`. */
export function parseBytes(name: SettingName, raw: string, min: number, max: number): number {
  const match = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(raw.trim());
  if (!match) fail(name, raw);
  const bytes = Number(match[1]) * (sizeUnits[match[2] ?? ""] ?? 1);
  if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) fail(name, raw);
  return bytes;
}
