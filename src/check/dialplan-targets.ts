/** The dialplan places the config sends callers to: each must exist in the PBX, or the caller is hung up there. */
import type { Config, Fallback, TransferDestination } from '../config/schema.js';

export interface DialplanTarget {
  context: string;
  /** Unset: only the context is known (a pattern, or chosen per call). */
  extension?: string;
  priority?: number;
  /** The config field that names it, e.g. routes.default.fallback. */
  use: string;
}

/** The routes' `continue` fallbacks and after_bot_hangup, and their transfer destinations; each place once. */
export function routeTargets(routes: Config['routes']): DialplanTarget[] {
  const entries: [string, RouteLike][] = [['routes.default', routes.default], ...routes.table.map((e, i): [string, RouteLike] => [`routes.table[${i}]`, e])];
  const targets = entries.flatMap(([name, route]) => [
    ...continueTarget(route.fallback, `${name}.fallback`),
    ...continueTarget(route.after_bot_hangup, `${name}.after_bot_hangup`),
    ...Object.entries(route.transfers ?? {}).map(([to, d]: [string, TransferDestination]) => ({ ...d, priority: 1, use: `${name}.transfers.${to}` })),
  ]);
  return uniqueTargets(targets);
}

export function uniqueTargets(targets: DialplanTarget[]): DialplanTarget[] {
  const seen = new Map<string, DialplanTarget>();
  for (const t of targets) seen.set(placeOf(t), seen.get(placeOf(t)) ?? t);
  return [...seen.values()];
}

/** `context,extension,priority` as the dialplan writes it, or `context X`. */
export function placeOf(t: DialplanTarget): string {
  return t.extension === undefined ? `context ${t.context}` : `${t.context},${t.extension},${t.priority ?? 1}`;
}

interface RouteLike {
  fallback?: Fallback;
  after_bot_hangup?: Fallback;
  transfers?: Record<string, TransferDestination>;
}

function continueTarget(action: Fallback | undefined, use: string): DialplanTarget[] {
  return action?.action === 'continue' ? [{ context: action.context, extension: action.extension, priority: action.priority, use }] : [];
}
