import { DIALPLAN_NAME, type Config, type Fallback, type RouteEntry, type TransferDestination, type TwilioAction } from '../config/schema.js';

export interface Route {
  /** Which config entry matched: 'default' or 'table[N]' (for the outcome log line). */
  name: string;
  bot: string;
  record: boolean;
  externalId?: string;
  variables: Record<string, string>;
  fallback: Fallback;
  afterBotHangup: Fallback;
  /** Refer-To targets the bot may send the caller to; anything else is refused. */
  transfers: Readonly<Record<string, TransferDestination>>;
  transferTimeoutS: number;
  /** The same route in Twilio's terms, for calls to Twilio numbers. */
  twilio: TwilioRoute;
  /** Hints that were ignored and why (bad values from the dialplan). */
  warnings: string[];
}

export interface TwilioRoute {
  fallback: TwilioAction;
  afterBotHangup: TwilioAction;
  /** Refer-To name → E.164 number or SIP URI. */
  transfers: Readonly<Record<string, string>>;
}

export interface RouteInput {
  hints: Readonly<Record<string, string>>;
  dialed: string;
  caller: string;
}

const DEFAULT_FALLBACK: Fallback = { action: 'hangup', cause: 16 };
const TWILIO_HANGUP: TwilioAction = { action: 'hangup' };
const DEFAULT_TRANSFER_TIMEOUT_S = 30;
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);
const SAFE_VALUE = /^[^\u0000-\u001f\u007f]{0,256}$/;

/**
 * Route precedence: the dialplan's hints, then the first table entry matching the dialled number
 * and caller, then the default.
 */
export function selectRoute(routes: Config['routes'], input: RouteInput): Route {
  const index = routes.table.findIndex((r) => matches(r, input));
  const entry = routes.table[index];
  const base = routes.default;
  const route: Route = {
    name: entry ? `table[${index}]` : 'default',
    bot: entry?.bot ?? base.bot,
    record: entry?.record ?? base.record ?? false,
    variables: { ...base.variables, ...entry?.variables },
    fallback: entry?.fallback ?? base.fallback ?? DEFAULT_FALLBACK,
    afterBotHangup: entry?.after_bot_hangup ?? base.after_bot_hangup ?? DEFAULT_FALLBACK,
    transfers: entry?.transfers ?? base.transfers ?? {},
    transferTimeoutS: entry?.transfer_timeout_s ?? base.transfer_timeout_s ?? DEFAULT_TRANSFER_TIMEOUT_S,
    twilio: {
      fallback: entry?.twilio?.fallback ?? base.twilio?.fallback ?? TWILIO_HANGUP,
      afterBotHangup: entry?.twilio?.after_bot_hangup ?? base.twilio?.after_bot_hangup ?? TWILIO_HANGUP,
      transfers: entry?.twilio?.transfers ?? base.twilio?.transfers ?? {},
    },
    warnings: [],
  };
  applyHints(route, input.hints);
  return route;
}

function matches(entry: RouteEntry, input: RouteInput): boolean {
  if (entry.dialed !== undefined && entry.dialed !== input.dialed) return false;
  if (entry.caller_prefix !== undefined && !input.caller.startsWith(entry.caller_prefix)) return false;
  return true;
}

function applyHints(route: Route, hints: Readonly<Record<string, string>>): void {
  const continueTo: { context?: string; extension?: string; priority?: number; refused?: boolean } = {};
  for (const [key, value] of Object.entries(hints)) {
    if (!SAFE_VALUE.test(value)) {
      route.warnings.push(`hint ${key} ignored: control characters`);
      continue;
    }
    if (key === 'bot' && value !== '') route.bot = value;
    else if (key === 'record') applyRecord(route, value);
    else if (key === 'external_id') route.externalId = value;
    else if (key.startsWith('var_') && key.length > 4) route.variables[key.slice(4)] = value;
    else if (key === 'fallback_context' || key === 'fallback_extension') {
      if (isDialplanName(value, route, key)) continueTo[key === 'fallback_context' ? 'context' : 'extension'] = value;
      else continueTo.refused = true;
    }
    else if (key === 'fallback_priority') continueTo.priority = positive(value, route, key);
    else if (key === 'fallback_cause') applyCause(route, value);
  }
  if (continueTo.context !== undefined && !continueTo.refused) {
    route.fallback = {
      action: 'continue',
      context: continueTo.context,
      extension: continueTo.extension ?? 's',
      priority: continueTo.priority ?? 1,
    };
  }
}

/**
 * FreeSWITCH's uuid_transfer takes its arguments from one space-separated line: a hint of
 * `9999 XML internal` would choose the context. Only the config's dialplan-name rule passes; the
 * value is quoted (JSON-escaped, cut short) in the warning, never written raw.
 */
function isDialplanName(value: string, route: Route, key: string): boolean {
  if (DIALPLAN_NAME.test(value)) return true;
  route.warnings.push(`hint ${key} ignored: ${JSON.stringify(value.slice(0, 40))} is not a dialplan name `
    + '(letters, digits, _ + * # . -); the route\'s own fallback applies');
  return false;
}

function applyRecord(route: Route, value: string): void {
  const word = value.toLowerCase();
  if (TRUE_WORDS.has(word)) route.record = true;
  else if (FALSE_WORDS.has(word)) route.record = false;
  else route.warnings.push(`hint record ignored: '${word.slice(0, 16)}' is not yes/no`);
}

function applyCause(route: Route, value: string): void {
  const cause = Number(value);
  if (Number.isInteger(cause) && cause >= 1 && cause <= 127) route.fallback = { action: 'hangup', cause };
  else route.warnings.push('hint fallback_cause ignored: not a Q.850 cause 1-127');
}

function positive(value: string, route: Route, key: string): number | undefined {
  const n = Number(value);
  if (Number.isInteger(n) && n > 0) return n;
  route.warnings.push(`hint ${key} ignored: not a positive integer`);
  return undefined;
}

/**
 * The destination for a Refer-To name, if the route allows it. The name comes from the bot's REFER:
 * only the route's own entries count (never inherited object properties such as `constructor`).
 */
export function allowedTransfer(
  transfers: Readonly<Record<string, TransferDestination>>, name: string,
): TransferDestination | undefined {
  return Object.hasOwn(transfers, name) ? transfers[name] : undefined;
}
