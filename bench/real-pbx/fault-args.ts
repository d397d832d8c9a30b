/** Command line of the fault runner (faults.ts): the runners' shared options plus the faults'. */
import { parseArgs } from 'node:util';
import { OPTION_SPEC, optionsFrom, port, positive, UsageError, type Options } from './args.js';
import type { PbxKind } from './modes.js';

export const FAULTS = {
  kill: { letter: 'a', what: 'kill -9 of the product, the same config started again --restart-after-s later' },
  'twin-500': { letter: 'b', what: 'Twin answers every warm-up with --fail-status for --fault-for-s, then recovers' },
  'twin-slow': { letter: 'c', what: 'Twin holds every warm-up --slow-ms (over the warm-up timeout) for --fault-for-s' },
  'pbx-drop': { letter: 'd', what: "the product's connections to the PBX (ARI / ESL) dropped from the PBX's side (--drop)" },
} as const;
export type FaultName = keyof typeof FAULTS;

export interface FaultOptions extends Options {
  faults: FaultName[];
  rate: number;
  faultAtS: number;
  faultForS: number;
  restartAfterS: number;
  slowMs: number;
  failStatus: number;
  /** A caller not bridged nor sent on by then is stranded; it hangs up then. */
  boundS: number;
  cooldownS: number;
  warmupTimeoutMs: number;
  httpPort: number;
  /** Where the dialplan's own fallback rings people (Asterisk lab: [twin-fallback] Queue → operator); 0: not answered. */
  operatorPort: number;
  /** pbx-drop: 'sockets' (ss -K) or 'cli:<command>' (an Asterisk CLI / FreeSWITCH api command). */
  drop: string;
  /** The PBX's log with the bench dialplan's fallback lines (Asterisk messages.log, freeswitch.log). */
  pbxLog: string;
  lockWaitS: number;
}

export const FAULT_USAGE = `usage: node dist/bench/real-pbx/faults.js --pbx asterisk|freeswitch [options]

  --faults kill,twin-500,twin-slow,pbx-drop   (or a,b,c,d) one run per fault and mode, modes interleaved
  --modes default,bridge    asterisk default: default,bridge; freeswitch: default
  --rate 50                 new calls per second, for --duration-s 20
  --hold-s 3                the bot hangs up this long after answering (the PBX then hangs up the caller)
  --bound-s 20              a caller neither bridged nor sent on by then is stranded (it hangs up then)
  --fault-at-s 5            when the fault starts, from the first call
  --fault-for-s 5           how long twin-500 / twin-slow last
  --restart-after-s 2       kill: the product is started again this long after the kill
  --slow-ms 8000 --fail-status 500
  --warmup-timeout-ms 5000  the product's twin.warmup_timeout_ms (its default is 15000)
  --cooldown-s 5            the product's trunk.cooldown_s (its default is 180)
  --http-port 18690         the product's HTTP port (/v1/trunk and /readyz polled every 200 ms)
  --operator-port 5083      a SIPp person answering the dialplan's own fallback (asterisk; 0: none)
  --drop sockets            pbx-drop: ss -K of the product's connections to ARI / ESL, from the PBX's side;
                            or cli:'module reload res_ari.so' (run through --cli / the ESL api)
  --pbx-log FILE            the PBX's log, for the bench dialplan's fallback lines (calls that never reached
                            the product); default /var/log/asterisk/messages, /usr/local/freeswitch/log/freeswitch.log
  --lock-wait-s 7200        wait this long for another real-PBX benchmark to finish
  and run.js's PBX options (--host, ports, --ari-*, --cli, --esl-*, --warmup-calls, --drain-s, --out, …)
`;

const FAULT_SPEC = {
  faults: { type: 'string' }, rate: { type: 'string' }, 'bound-s': { type: 'string' }, 'fault-at-s': { type: 'string' },
  'fault-for-s': { type: 'string' }, 'restart-after-s': { type: 'string' }, 'slow-ms': { type: 'string' }, 'fail-status': { type: 'string' },
  'warmup-timeout-ms': { type: 'string' }, 'cooldown-s': { type: 'string' }, 'http-port': { type: 'string' },
  'operator-port': { type: 'string' }, drop: { type: 'string' }, 'pbx-log': { type: 'string' }, 'lock-wait-s': { type: 'string' },
} as const;

export function parseFaultOptions(argv: string[]): FaultOptions {
  const { values } = parseArgs({ args: argv, options: { ...OPTION_SPEC, ...FAULT_SPEC } });
  const rate = values.rate ?? '50';
  const o = optionsFrom({ ...values, rates: rate }, { durationS: '20', modes: (pbx: PbxKind) => (pbx === 'asterisk' ? ['default', 'bridge'] : ['default']) });
  const drop = values.drop ?? 'sockets';
  if (drop !== 'sockets' && !drop.startsWith('cli:')) throw new UsageError(`--drop: 'sockets' or 'cli:<command>', not '${drop}'`);
  return {
    ...o,
    faults: (values.faults ?? 'kill,twin-500,twin-slow,pbx-drop').split(',').map((s) => faultName(s.trim())),
    rate: positive('--rate', rate),
    faultAtS: positive('--fault-at-s', values['fault-at-s'] ?? '5'),
    faultForS: positive('--fault-for-s', values['fault-for-s'] ?? '5'),
    restartAfterS: positive('--restart-after-s', values['restart-after-s'] ?? '2'),
    slowMs: positive('--slow-ms', values['slow-ms'] ?? '8000'),
    failStatus: positive('--fail-status', values['fail-status'] ?? '500'),
    boundS: positive('--bound-s', values['bound-s'] ?? '20'),
    cooldownS: positive('--cooldown-s', values['cooldown-s'] ?? '5'),
    warmupTimeoutMs: positive('--warmup-timeout-ms', values['warmup-timeout-ms'] ?? '5000'),
    httpPort: port('--http-port', values['http-port'] ?? '18690'),
    operatorPort: Number(values['operator-port'] ?? (o.pbx === 'asterisk' ? '5083' : '0')),
    drop,
    pbxLog: values['pbx-log'] ?? (o.pbx === 'asterisk' ? '/var/log/asterisk/messages' : '/usr/local/freeswitch/log/freeswitch.log'),
    lockWaitS: Number(values['lock-wait-s'] ?? '7200'),
  };
}

function faultName(s: string): FaultName {
  const found = (Object.keys(FAULTS) as FaultName[]).find((name) => name === s || FAULTS[name].letter === s);
  if (!found) throw new UsageError(`--faults: unknown fault '${s}'; known: ${Object.keys(FAULTS).join(', ')} (or a-d)`);
  return found;
}

export { UsageError };
