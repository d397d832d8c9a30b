/** Command line of the real-PBX benchmark, with each PBX's lab defaults. */
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultModes, findModes, parseAddedMode, type BenchMode, type PbxKind } from './modes.js';

export interface Options {
  pbx: PbxKind;
  rates: number[];
  durationS: number;
  holdS: number;
  modes: BenchMode[];
  /** PBX SIP address (UDP); the capture filters on sipPort. */
  host: string;
  sipPort: number;
  /** Where the SIPp bot listens (the PBX's Twin trunk points here) and where the caller sends from. */
  botPort: number;
  callerPort: number;
  /** Extra headers of the caller's INVITE (Asterisk lab: X-Acc-Endpoint: hostile picks the endpoint). */
  callerHeaders: string[];
  /** Network interface for tcpdump. */
  iface: string;
  pbxPid?: number;
  /** Asterisk */
  ariUrl: string;
  ariUser: string;
  ariPassword: string;
  app: string;
  cli: string[];
  /** FreeSWITCH */
  eslHost: string;
  eslPort: number;
  eslPassword: string;
  productPort: number;
  /** Twin stand-in port (0 = any free port). */
  twinPort: number;
  warmupCalls: number;
  /** Twin stand-in's warm-up delay range, ms (undefined: answers at once). */
  warmupDelayMs?: { min: number; max: number };
  /** Longest wait for the PBX to have no channels between runs. */
  drainS: number;
  /** How long after the callers' SIPp ends the PBX's leftover channels are counted (the bot still up). */
  leftAfterS: number;
  out: string;
}

export const USAGE = `usage: node dist/bench/real-pbx/run.js --pbx asterisk|freeswitch [options]

  --rates 10,50,100        calls per second, one run per rate and mode (interleaved per rate)
  --duration-s 5           seconds of new calls per run (calls = rate * duration)
  --hold-s 3               each call lasts this long after the caller got 200 OK
  --modes diy,product      default: every mode of the PBX in modes.ts
                           (asterisk: diy,default,bridge,inband,silent,product-dialplan; freeswitch: floor,default)
  --add-mode name:exten[:json]  a product mode with config overrides, e.g.
                           nohold:7400:'{"freeswitch":{"hold":"none"}}' (then list it in --modes)
  --host 127.0.0.1 --sip-port 5060|5090 --bot-port 5070|5072 --caller-port 5080|5082 --iface lo
  --caller-header 'X-Acc-Endpoint: hostile'   extra INVITE header (repeatable; asterisk default as shown,
                           'none' for no header): how the PBX picks the caller's endpoint
  --pbx-pid N              default: pidof asterisk / freeswitch
  --ari-url http://127.0.0.1:8088 --ari-user asterisk --ari-password asterisk --app twin
  --cli "asterisk -rx"     how to run one Asterisk CLI command (the command is appended as one argument),
                           e.g. --cli /opt/pbx/asterisk/cli.sh
  --esl-host 127.0.0.1 --esl-port 8021 --esl-password ClueCon --product-port 8084
  --twin-port 0            the Twin stand-in's port (0: any free port)
  --warmup-ms 300-1500     the stand-in holds each warm-up for a uniform draw in this range (ms), as a
                           real Twin answers when the bot is ready (default: at once); the latency
                           figures are then answer→bot INVITE minus that call's warm-up
  --warmup-calls 30        calls before each measured run (not measured) so the product's JIT is warm;
                           then the runner waits (up to 20 s) until the product's CPU is idle
  --drain-s 60             longest wait for the PBX to have 0 channels between runs
  --left-after-s 2         when left_channels is counted: this long after the callers' SIPp ended (bot still up)
  --out DIR                keep captures, configs and logs here (default: a new dir under /tmp)
`;

/** The runners' shared options (parseArgs); faults.ts adds its own to these. */
export const OPTION_SPEC = {
  pbx: { type: 'string' }, rates: { type: 'string' }, 'duration-s': { type: 'string' }, 'hold-s': { type: 'string' },
  modes: { type: 'string' }, 'add-mode': { type: 'string', multiple: true },
  host: { type: 'string' }, 'sip-port': { type: 'string' }, 'bot-port': { type: 'string' }, 'caller-port': { type: 'string' },
  'caller-header': { type: 'string', multiple: true }, iface: { type: 'string' }, 'pbx-pid': { type: 'string' },
  'ari-url': { type: 'string' }, 'ari-user': { type: 'string' }, 'ari-password': { type: 'string' }, app: { type: 'string' },
  cli: { type: 'string' },
  'esl-host': { type: 'string' }, 'esl-port': { type: 'string' }, 'esl-password': { type: 'string' }, 'product-port': { type: 'string' },
  'twin-port': { type: 'string' }, 'warmup-ms': { type: 'string' }, 'warmup-calls': { type: 'string' }, 'drain-s': { type: 'string' }, 'left-after-s': { type: 'string' }, out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTION_SPEC }>>['values'];

export function parseOptions(argv: string[]): Options {
  return optionsFrom(parseArgs({ args: argv, options: OPTION_SPEC }).values);
}

/** Options from parsed values; `defaults` replaces the run.ts defaults of a few (faults.ts). */
export function optionsFrom(values: Values, defaults: { rates?: string; durationS?: string; modes?: (pbx: PbxKind) => string[] } = {}): Options {
  if (values.help) throw new UsageError('');
  const pbx = values.pbx;
  if (pbx !== 'asterisk' && pbx !== 'freeswitch') throw new UsageError('--pbx asterisk|freeswitch is required');
  const ast = pbx === 'asterisk';
  const added = (values['add-mode'] ?? []).map((text) => parseAddedMode(pbx, text));
  const modeNames = values.modes ? values.modes.split(',').map((s) => s.trim()).filter(Boolean) : (defaults.modes ?? defaultModes)(pbx);
  return {
    pbx,
    rates: (values.rates ?? defaults.rates ?? '10,50,100').split(',').map((s) => positive('--rates', s)),
    durationS: positive('--duration-s', values['duration-s'] ?? defaults.durationS ?? '5'),
    holdS: positive('--hold-s', values['hold-s'] ?? '3'),
    modes: findModes(pbx, modeNames, added),
    host: values.host ?? '127.0.0.1',
    sipPort: port('--sip-port', values['sip-port'] ?? (ast ? '5060' : '5090')),
    botPort: port('--bot-port', values['bot-port'] ?? (ast ? '5070' : '5072')),
    callerPort: port('--caller-port', values['caller-port'] ?? (ast ? '5080' : '5082')),
    callerHeaders: (values['caller-header'] ?? (ast ? ['X-Acc-Endpoint: hostile'] : [])).filter((h) => h !== 'none'),
    iface: values.iface ?? 'lo',
    pbxPid: values['pbx-pid'] ? positive('--pbx-pid', values['pbx-pid']) : undefined,
    ariUrl: values['ari-url'] ?? 'http://127.0.0.1:8088',
    ariUser: values['ari-user'] ?? 'asterisk',
    ariPassword: values['ari-password'] ?? 'asterisk',
    app: values.app ?? 'twin',
    cli: (values.cli ?? 'asterisk -rx').split(/\s+/).filter(Boolean),
    eslHost: values['esl-host'] ?? '127.0.0.1',
    eslPort: port('--esl-port', values['esl-port'] ?? '8021'),
    eslPassword: values['esl-password'] ?? 'ClueCon',
    productPort: port('--product-port', values['product-port'] ?? '8084'),
    twinPort: Number(values['twin-port'] ?? '0'),
    warmupDelayMs: delayRange(values['warmup-ms']),
    warmupCalls: Number(values['warmup-calls'] ?? '30'),
    drainS: positive('--drain-s', values['drain-s'] ?? '60'),
    leftAfterS: positive('--left-after-s', values['left-after-s'] ?? '2'),
    out: outDir(values.out),
  };
}

export class UsageError extends Error {}

export function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name}: '${text}' is not a positive number`);
  return n;
}

export function port(name: string, text: string): number {
  const n = positive(name, text);
  if (!Number.isInteger(n) || n > 65535) throw new UsageError(`${name}: '${text}' is not a port`);
  return n;
}

function outDir(given: string | undefined): string {
  if (given === undefined) return mkdtempSync(join(tmpdir(), 'twin-real-pbx-'));
  mkdirSync(given, { recursive: true });
  return given;
}

/** `300-1500` or `800` → { min, max } ms. */
function delayRange(value: string | undefined): { min: number; max: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)(?:-(\d+))?$/.exec(value);
  if (!m || Number(m[2] ?? m[1]) < Number(m[1])) throw new Error(`--warmup-ms must be MS or MIN-MAX, e.g. 300-1500 (got ${value})`);
  return { min: Number(m[1]), max: Number(m[2] ?? m[1]) };
}
