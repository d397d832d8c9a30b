/**
 * The trunk check of the shipped dialplans, read from the files themselves (dialplan/asterisk/
 * extensions.conf, dialplan/freeswitch/dialplan-twin.xml), so that the simulators skip the product
 * exactly when the shipped dialplan would: a change to the check changes what the tests see.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The shipped dialplans live at the repository root; the built copy in dist/ reads them from there. */
const DIALPLAN_DIR = [new URL('../../dialplan/', import.meta.url), new URL('../../../dialplan/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((dir) => existsSync(`${dir}asterisk/extensions.conf`)) ?? '';

export interface TrunkCheck {
  /** What the check reads: the custom device state's name (Custom:<name>) or the global variable's. */
  readonly name: string;
  /** Whether the dialplan skips the product for this published value (undefined: never published). */
  skips(published: string | undefined): boolean;
  /** Where a skipped caller goes, and the channel variables set on the way. */
  readonly fallback: { context: string; extension: string; priority: number; vars: Record<string, string> };
}

/**
 * [from-customers] in extensions.conf, its `nth` check (0: the trunk's UNAVAILABLE, 1: ONHOLD, the product overloaded):
 *   GotoIf($["${DEVICE_STATE(Custom:<name>)}" = "<VALUE>"]?<label>) … n(<label>),Set(K=V) … Goto(ctx,ext,prio)
 */
export function asteriskTrunkCheck(path = `${DIALPLAN_DIR}asterisk/extensions.conf`, nth = 0): TrunkCheck {
  const text = readFileSync(path, 'utf8');
  const check = [...text.matchAll(/GotoIf\(\$\["\$\{DEVICE_STATE\(Custom:([^)]+)\)\}" (!?=) "([^"]*)"\]\?([A-Za-z0-9_-]+)\)/g)][nth];
  if (!check) throw new Error(`${path}: no GotoIf on DEVICE_STATE(Custom:…) number ${nth + 1} found`);
  const [, name = '', operator, value, label = ''] = check;
  const branch = text.slice(text.indexOf(`n(${label}),`)).split('\n');
  const vars: Record<string, string> = {};
  let target: RegExpExecArray | null = null;
  for (const line of branch) {
    const set = /Set\(([A-Za-z_]+)=([^)]*)\)/.exec(line);
    if (set) vars[set[1]!] = set[2]!;
    target = /Goto\(([^,]+),([^,]+),(\d+)\)/.exec(line);
    if (target) break;
  }
  if (!target) throw new Error(`${path}: the branch at label ${label} does not Goto(context,extension,priority)`);
  return {
    name,
    // A custom device state never set reads as UNKNOWN.
    skips: (published) => ((published ?? 'UNKNOWN') === value) === (operator === '='),
    fallback: { context: target[1]!, extension: target[2]!, priority: Number(target[3]), vars },
  };
}

/** The shipped contexts for callers: [from-customers] (the phone rings) and [from-customers-answered]. */
export type CallerContext = 'from-customers' | 'from-customers-answered';

/** One [context] of extensions.conf: its lines up to the next context. */
function contextOf(text: string, context: string, path: string): string {
  const start = text.indexOf(`\n[${context}]`);
  if (start < 0) throw new Error(`${path}: no [${context}] context`);
  const next = text.indexOf('\n[', start + 1);
  return text.slice(start, next < 0 ? undefined : next);
}

/**
 * What a shipped caller context does before Stasis(): Answer() the caller, or let its phone ring
 * (Ringing(): 180, answered later by the bot's Dial(), the product or Queue()), and whether it
 * plays Playtones(ring). The simulator places callers as the file says.
 */
export function asteriskCallerGreeting(context: CallerContext = 'from-customers', path = `${DIALPLAN_DIR}asterisk/extensions.conf`): { answers: boolean; ringsPhone: boolean; playsTones: boolean } {
  const beforeStasis = beforeStasisOf(context, path);
  const calls = [...beforeStasis.matchAll(/^\s*same => n(?:\([^)]*\))?,(\w+)\(([^)]*)\)/gm)].map((m) => `${m[1]}(${m[2]})`);
  const answers = calls.some((c) => c.startsWith('Answer('));
  return { answers, ringsPhone: calls.includes('Ringing()') && !answers, playsTones: calls.includes('Playtones(ring)') };
}

/**
 * A shipped context's check that skips the ringback: the GotoIf on DEVICE_STATE(Custom:<name>)
 * whose label is the Stasis() line itself, so that `Playtones(ring)` in between does not run. The
 * value it skips on (INUSE: the product's QUIET); undefined when the context has no Playtones(ring)
 * or no such check.
 */
export function asteriskRingbackCheck(context: CallerContext = 'from-customers', path = `${DIALPLAN_DIR}asterisk/extensions.conf`): { name: string; skipsOn: string } | undefined {
  const text = contextOf(readFileSync(path, 'utf8'), context, path);
  for (const check of text.matchAll(/GotoIf\(\$\["\$\{DEVICE_STATE\(Custom:([^)]+)\)\}" = "([^"]*)"\]\?([A-Za-z0-9_-]+)\)/g)) {
    const [, name = '', value = '', label = ''] = check;
    const target = new RegExp(`same => n\\(${label}\\),Stasis\\(`).exec(text);
    const between = target ? text.slice(check.index, target.index) : '';
    if (target && between.includes('Playtones(ring)')) return { name, skipsOn: value };
  }
  return undefined;
}

/** A context's dialplan lines before its Stasis() line (comments included). */
function beforeStasisOf(context: CallerContext, path: string): string {
  const block = contextOf(readFileSync(path, 'utf8'), context, path);
  const stasis = /^\s*same => n(?:\([^)]*\))?,Stasis\(/m.exec(block);
  if (!stasis) throw new Error(`${path}: [${context}] has no Stasis() line`);
  return block.slice(0, stasis.index);
}

/**
 * An extension of dialplan-twin.xml that skips the product (`twin-bot-throttled`,
 * `twin-bot-overloaded`): a condition on ${<variable>} whose actions `set` variables and
 * `transfer` <extension> XML <context>.
 */
export function freeswitchTrunkCheck(path = `${DIALPLAN_DIR}freeswitch/dialplan-twin.xml`, name = 'twin-bot-throttled'): TrunkCheck {
  const text = readFileSync(path, 'utf8');
  const extension = new RegExp(`<extension name="${name}">([\\s\\S]*?)</extension>`).exec(text)?.[1];
  const condition = extension && /<condition field="\$\{([A-Za-z0-9_]+)\}" expression="([^"]*)">/.exec(extension);
  const transfer = extension && /<action application="transfer" data="(\S+) XML (\S+)"\/>/.exec(extension);
  if (!condition || !transfer) throw new Error(`${path}: no ${name} extension with a condition on a variable and a transfer`);
  const vars: Record<string, string> = {};
  for (const set of extension.matchAll(/<action application="set" data="([A-Za-z_]+)=([^"]*)"\/>/g)) vars[set[1]!] = set[2]!;
  const expression = new RegExp(condition[2]!);
  return {
    name: condition[1]!,
    // An unset global variable expands to nothing.
    skips: (published) => expression.test(published ?? ''),
    fallback: { context: transfer[2]!, extension: transfer[1]!, priority: 1, vars },
  };
}

/**
 * The options of [twin-bot]'s Dial() in twin-bot.conf. Without `g`, a real Asterisk (22.10.1)
 * hangs up the caller ~3 ms after the bot's BYE instead of going on in the dialplan; the caller's
 * hangup handler then reports `twin_report=hangup` with DIALSTATUS=ANSWER.
 */
export function asteriskBotDialGoesOn(path = `${DIALPLAN_DIR}asterisk/twin-bot.conf`): boolean {
  const text = readFileSync(path, 'utf8');
  const dial = /^\s*same => n,Dial\(\$\{CUT\(TWIN_BOT,\^,1\)\},\$\{CUT\(TWIN_BOT,\^,2\)\},(.*)\)\s*$/m.exec(text);
  if (!dial) throw new Error(`${path}: no Dial(\${CUT(TWIN_BOT,^,1)},\${CUT(TWIN_BOT,^,2)},…) in [twin-bot]`);
  const flags = dial[1]!.replace(/\([^)]*\)/g, '');
  return flags.includes('g');
}

/** `<context name="<name>">…</context>` as a shipped dialplan/freeswitch/<name>.xml has it (as `xml_locate` prints a context). */
export function freeswitchContextXml(name: string, dir = `${DIALPLAN_DIR}freeswitch/`): string | undefined {
  const path = `${dir}${name}.xml`;
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  const at = text.indexOf(`<context name="${name}">`);
  const end = text.indexOf('</context>', at);
  return at < 0 || end < 0 ? undefined : `${text.slice(at, end + '</context>'.length)}\n`;
}
