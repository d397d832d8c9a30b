/**
 * What the benchmark compares: one row per mode. A mode is an extension of the bench dialplan
 * (dialplan/asterisk/bench-extensions.conf, dialplan/freeswitch/bench-dialplan.xml) and whether
 * the product must run for it, with config fields on top of the generated product config.
 *
 * To add a mode, add a row (or pass --add-mode name:extension:'{"asterisk":{...}}' once).
 */
export type PbxKind = 'asterisk' | 'freeswitch';

export interface BenchMode {
  name: string;
  pbx: PbxKind;
  /** Extension the SIPp caller dials. */
  extension: string;
  /** Whether the runner starts the product (twin-connector run) for this mode. */
  product: boolean;
  /** Deep-merged over the generated product config, e.g. { asterisk: { bot_leg: 'dialplan' } }. */
  config?: Record<string, unknown>;
}

export const MODES: BenchMode[] = [
  { name: 'diy', pbx: 'asterisk', extension: '7100', product: false },
  // The shipped dialplan and a config that names no bot_leg: auto, which takes dialplan when twin-bot.conf is included.
  { name: 'default', pbx: 'asterisk', extension: '7200', product: true },
  { name: 'bridge', pbx: 'asterisk', extension: '7200', product: true, config: { asterisk: { bot_leg: 'bridge' } } },
  // The shipped [from-customers-answered]: answered at once, in-band Playtones(ring) while Twin warms up.
  { name: 'inband', pbx: 'asterisk', extension: '7202', product: true },
  // inband without the Playtones(ring): what the ringback of waiting callers costs Asterisk.
  { name: 'silent', pbx: 'asterisk', extension: '7201', product: true },
  // The product continues the caller into [twin-bot] (dialplan/asterisk/twin-bot.conf), which Dials the bot.
  { name: 'product-dialplan', pbx: 'asterisk', extension: '7300', product: true, config: { asterisk: { bot_leg: 'dialplan', hold: 'none' } } },
  { name: 'floor', pbx: 'freeswitch', extension: '7300', product: false },
  // The shipped dialplan-twin.xml shape and a config that leaves the defaults.
  { name: 'default', pbx: 'freeswitch', extension: '7400', product: true },
];

/** Default modes of a PBX: every row of the table for it. */
export function defaultModes(pbx: PbxKind): string[] {
  return MODES.filter((m) => m.pbx === pbx).map((m) => m.name);
}

/** "name:extension[:json]" → a product mode (a mode without the product is a table row). */
export function parseAddedMode(pbx: PbxKind, text: string): BenchMode {
  const m = /^([A-Za-z0-9_-]+):([0-9A-Za-z*#+]+)(?::(.*))?$/s.exec(text);
  if (!m) throw new Error(`--add-mode ${text}: expected name:extension[:{json config overrides}]`);
  const config = m[3] ? (JSON.parse(m[3]) as Record<string, unknown>) : undefined;
  return { name: m[1]!, pbx, extension: m[2]!, product: true, config };
}

export function findModes(pbx: PbxKind, names: string[], added: BenchMode[]): BenchMode[] {
  const table = [...MODES.filter((m) => m.pbx === pbx), ...added];
  return names.map((name) => {
    const mode = [...table].reverse().find((m) => m.name === name);
    if (!mode) throw new Error(`unknown mode '${name}' for ${pbx}; known: ${table.map((m) => m.name).join(', ')}`);
    return mode;
  });
}
