import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';

/** A configuration problem, told in words a sysadmin can act on. Never carries a secret. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const CONFIG_ENV = 'TWIN_CONNECTOR_CONFIG';

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readConfigYaml(path), env);
}

/** Most YAML mistakes in a config are an unquoted value that starts with one of YAML's indicators. */
const YAML_HINT = 'put a value in quotes if it starts with * & ! | > @ ` % or holds ": " or " #", and close every quote';
/** A problem at each of these places is told; the rest are usually its echoes. */
const MAX_YAML_PROBLEMS = 5;

/**
 * The file's YAML, before secrets are resolved. The yaml library's own messages quote the line
 * (and a password on it), so problems are told by position and error code only; its warnings
 * (e.g. `password: !x…` read as a tag) are problems too, and never reach process warnings.
 */
export function readConfigYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const found = [...doc.errors, ...doc.warnings].map((e) => ({ offset: e.pos[0], code: e.code as string }));
  found.push(...unresolvedAliases(doc).map((offset) => ({ offset, code: 'BAD_ALIAS' })));
  if (found.length > 0) {
    throw new ConfigError(found.slice(0, MAX_YAML_PROBLEMS).map(({ offset, code }) => {
      const { line, col } = lines.linePos(offset);
      return `${path} line ${line}:${col}: YAML syntax error (${code}): ${YAML_HINT}`;
    }));
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw new ConfigError([`${path}: YAML error (aliases): ${YAML_HINT}`]); // e.g. an alias bomb
  }
}

/** Offsets of aliases (`*name`) with no anchor before them: an unquoted value that starts with `*`. */
function unresolvedAliases(doc: Document): number[] {
  const offsets: number[] = [];
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) === undefined) offsets.push(node.range?.[0] ?? 0);
    },
  });
  return offsets;
}

/** Fields that hold a secret: password, esl_password, token, api_token, secret. */
const SECRET_FIELD = /(password|token|secret)$/;
const ONLY_ENV_REFS = /^(\$\{[A-Za-z_][A-Za-z0-9_]*\})+$/;

/** Paths of secrets written in the file itself (not as ${ENV} or <field>_file), e.g. twin.password. */
export function inlineSecretFields(raw: unknown, path: string[] = []): string[] {
  if (raw === null || typeof raw !== 'object') return [];
  return Object.entries(raw).flatMap(([key, value]) => {
    const here = [...path, key];
    if (typeof value === 'string') return SECRET_FIELD.test(key) && !ONLY_ENV_REFS.test(value) ? [here.join('.')] : [];
    return inlineSecretFields(value, here);
  });
}

/**
 * Validates a parsed config. Secrets may be written as ${ENV_NAME}, or moved to a file and
 * named by a sibling key `<field>_file` (e.g. password_file: /run/secrets/twin).
 */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const resolved = resolveSecrets(raw, [], env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const result = ConfigSchema.safeParse(resolved, { reportInput: true }); // tells a missing field from a wrong one
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue));
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length > 0 ? issue.path.map(pathSegment).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') return `${where}: unknown field(s) ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${where}: is required`;
  if (issue.code === 'invalid_key') return `${where}: ${issue.issues[0]?.message ?? 'invalid name'}`;
  return `${where}: ${issue.message}`;
}

/** A key from the file is shown quoted when it has anything but plain characters (e.g. a CR/LF). */
function pathSegment(segment: PropertyKey): string {
  const text = String(segment);
  return /^[A-Za-z0-9_-]+$/.test(text) ? text : JSON.stringify(text);
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function resolveSecrets(value: unknown, path: string[], env: NodeJS.ProcessEnv, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_, name: string) => {
      const found = env[name];
      if (found === undefined) problems.push(`${path.join('.')}: environment variable ${name} is not set`);
      return found ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveSecrets(v, [...path, String(i)], env, problems));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const fieldPath = [...path, key];
    if (key.endsWith('_file') && typeof v === 'string') {
      out[key.slice(0, -'_file'.length)] = readSecretFile(v, fieldPath, problems);
    } else {
      out[key] = resolveSecrets(v, fieldPath, env, problems);
    }
  }
  return out;
}

function readSecretFile(file: string, path: string[], problems: string[]): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    problems.push(`${path.join('.')}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    return undefined;
  }
}
