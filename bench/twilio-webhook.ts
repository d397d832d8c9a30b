/**
 * Twilio webhook benchmark: incoming calls to a Twilio number at a steady rate through the Twilio
 * stand-in (signed webhook → signature check, route, trunk gate, sync warm-up against the Twin
 * simulator, TwiML back). "Added" is the webhook's round trip as the stand-in measures it minus
 * the time the Twin simulator spent on that call's warm-up: what the product adds on top of Twin.
 * Each call then runs on: the bot answers, hangs up after 200 ms, the <Dial> action is answered.
 * The stand-in and the Twin simulator share this process and its 2 cores with the product.
 * Run with: npm run build && node dist/bench/twilio-webhook.js   (BENCH_RATE, BENCH_SECONDS, BENCH_TWIN_MS)
 * Last line: twilio webhooks_per_s=N p50_added_ms=N p99_added_ms=N outcomes=...
 */
import { performance } from 'node:perf_hooks';
import { TwilioLab } from '../src/sim/twilio/twilio-lab.js';

const RATE = Number(process.env.BENCH_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const TWIN_MS = Number(process.env.BENCH_TWIN_MS ?? 50);

async function main(): Promise<void> {
  const lab = await TwilioLab.start({
    config: { log: { level: 'silent' }, trunk: { max_concurrent_calls: 10_000, max_calls_per_second: 10_000 } },
  });
  lab.twin.keepRecords = 100;
  lab.twilio.keepRequests = 100;
  lab.twin.script(() => ({ kind: 'slow', delayMs: TWIN_MS }));
  lab.twilio.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 200 });
  const twinMs = new Map<string, number>();
  lab.twin.onAnswered = (callId, ms) => twinMs.set(callId, ms);
  const added: number[] = [];
  lab.twilio.onRequest = (r) => {
    if (!r.url.endsWith('/voice') || r.status !== 200) return;
    const inTwin = twinMs.get(r.callSid);
    if (inTwin !== undefined) added.push(r.ms - inTwin);
    twinMs.delete(r.callSid);
  };

  const total = RATE * SECONDS;
  const calls: Promise<unknown>[] = [];
  const startedAt = performance.now();
  for (let i = 0; i < total; i += 1) {
    const due = startedAt + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    calls.push(lab.twilio.placeCall({ from: `+1555${String(i).padStart(7, '0')}`, to: '+15550199' }).left);
  }
  const sentS = (performance.now() - startedAt) / 1000;
  await Promise.all(calls);
  const deadline = Date.now() + 10_000;
  while (lab.outcomes.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const counts: Record<string, number> = {};
  const details = new Map<string, string>();
  for (const o of lab.outcomes) {
    counts[o.status] = (counts[o.status] ?? 0) + 1;
    if (o.status !== 'CONNECTED' && !details.has(o.status)) details.set(o.status, o.detail ?? '');
  }
  for (const [status, detail] of details) console.log(`first ${status}: ${detail}`);
  await lab.stop();

  added.sort((a, b) => a - b);
  const pct = (p: number) => added[Math.min(added.length - 1, Math.floor((p / 100) * added.length))] ?? NaN;
  console.log(`${total} webhooks at ${RATE}/s (sent in ${sentS.toFixed(1)} s), Twin warm-up ${TWIN_MS} ms, ${added.length} timed`);
  console.log(`twilio webhooks_per_s=${(total / sentS).toFixed(0)} p50_added_ms=${pct(50).toFixed(2)} p99_added_ms=${pct(99).toFixed(2)} outcomes=${JSON.stringify(counts)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
