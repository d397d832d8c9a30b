/**
 * The Twin simulator alone in a process of its own, for `BENCH_TWIN_PROCESS=1 npm run bench:twilio`:
 * the Twilio stand-in's event loop (every leg's timers) then no longer delays Twin's answers. Tells
 * its URL and credentials when ready, and on request how long it spent on each call's warm-up.
 */
import { TwinSimulator } from '../src/sim/twin-sim.js';

export interface TwinChildReady { cmd: 'twin-ready'; twinUrl: string; email: string; password: string }
export interface TwinChildTimes { cmd: 'times'; entries: [string, number][] }

const twin = new TwinSimulator();
twin.keepRecords = 100;
twin.script(() => ({ kind: 'slow', delayMs: Number(process.env.BENCH_TWIN_MS ?? 50) }));
const twinMs = new Map<string, number>();
twin.onAnswered = (callId, ms) => twinMs.set(callId, ms);

process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd !== 'times') return;
  process.send!({ cmd: 'times', entries: [...twinMs] } satisfies TwinChildTimes);
  twinMs.clear();
});
process.on('disconnect', () => process.exit(0));

await twin.start();
process.send!({ cmd: 'twin-ready', twinUrl: twin.url, email: twin.email, password: twin.password } satisfies TwinChildReady);
