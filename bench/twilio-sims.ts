/**
 * Twilio webhook benchmark's child process: the Twin simulator and the Twilio stand-in, driven over
 * IPC by bench/twilio-webhook.ts, so that the parent's CPU and event loop are the product's alone
 * (with everything in one process, the stand-in's own work showed up in the product's p99).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { TwilioSimulator } from '../src/sim/twilio/twilio-sim.js';

export type TwilioBenchCommand =
  | { cmd: 'target'; publicUrl: string; port: number }
  | { cmd: 'run'; rate: number; seconds: number };

export interface TwilioBenchReady {
  cmd: 'ready'; twinUrl: string; email: string; password: string; accountSid: string; authToken: string;
}

export interface TwilioBenchReport {
  cmd: 'run';
  total: number;
  sentS: number;
  /** Per timed webhook: its round trip minus the Twin simulator's time on that call's warm-up, ms. */
  addedMs: number[];
  /** With the Twin simulator in another process (BENCH_TWIN_URL): each webhook's round trip by CallSid, ms. */
  webhookMs: [string, number][];
  ends: Record<string, number>;
  /** This process's event-loop delay p99 during the run, ms: the stand-in's own lateness, which lands in addedMs. */
  loopP99Ms: number;
  /** Its longest stall, ms: a rare one hides below the p99 yet delays every call in flight. */
  loopMaxMs: number;
}

const TWIN_MS = Number(process.env.BENCH_TWIN_MS ?? 50);
/** Set when the Twin simulator runs in a process of its own (bench/twin-sim-child.ts). */
const EXTERNAL_TWIN = process.env.BENCH_TWIN_URL;
const twin = new TwinSimulator();
twin.keepRecords = 100;
const twilio = new TwilioSimulator({ msPerRingSecond: 10 });
twilio.keepRequests = 100;
twin.script(() => ({ kind: 'slow', delayMs: TWIN_MS }));
twilio.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 200 });

const twinMs = new Map<string, number>();
const added: number[] = [];
const webhookMs: [string, number][] = [];
twin.onAnswered = (callId, ms) => twinMs.set(callId, ms);
twilio.onRequest = (r) => {
  if (!r.url.endsWith('/voice') || r.status !== 200) return;
  if (EXTERNAL_TWIN) return void webhookMs.push([r.callSid, r.ms]);
  const inTwin = twinMs.get(r.callSid);
  if (inTwin !== undefined) added.push(r.ms - inTwin);
  twinMs.delete(r.callSid);
};

async function run(rate: number, seconds: number): Promise<TwilioBenchReport> {
  const total = rate * seconds;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const calls: Promise<{ kind: string }>[] = [];
  const startedAt = performance.now();
  for (let i = 0; i < total; i += 1) {
    const wait = startedAt + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    calls.push(twilio.placeCall({ from: `+1555${String(i).padStart(7, '0')}`, to: '+15550199' }).left);
  }
  const sentS = (performance.now() - startedAt) / 1000;
  const ends: Record<string, number> = {};
  for (const end of await Promise.all(calls)) ends[end.kind] = (ends[end.kind] ?? 0) + 1;
  loop.disable();
  return { cmd: 'run', total, sentS, addedMs: added.splice(0), webhookMs: webhookMs.splice(0), ends, loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6 };
}

process.on('message', (msg: TwilioBenchCommand) => {
  if (msg.cmd === 'target') twilio.configureNumber(msg.publicUrl, `http://127.0.0.1:${msg.port}`);
  else void run(msg.rate, msg.seconds).then((report) => process.send!(report));
});
process.on('disconnect', () => process.exit(0));

if (!EXTERNAL_TWIN) await twin.start();
process.send!({
  cmd: 'ready', twinUrl: EXTERNAL_TWIN ?? twin.url, email: process.env.BENCH_TWIN_EMAIL ?? twin.email,
  password: process.env.BENCH_TWIN_PASSWORD ?? twin.password, accountSid: twilio.accountSid, authToken: twilio.authToken,
} satisfies TwilioBenchReady);
