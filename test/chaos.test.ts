/**
 * Chaos, end to end through both PBX simulators: Twin flaps (500s, timeouts, slow answers, garbage,
 * nulls), the ARI websocket and the ESL connections are cut twice, callers hang up at random, and a
 * few hundred calls go through. Afterwards every caller has left the PBX, every call the product
 * saw has exactly one outcome, nothing of ours is left in either PBX, and the heap is back near
 * where it started.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallerResult, SimCall } from '../src/sim/call-model.js';
import { Lab } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import type { TwinBehaviour } from '../src/sim/twin-sim.js';
import { expectNoLeftovers, waitFor } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CALLS = 300;
const PER_SECOND = 60;

/** A small seeded generator, so a failing run can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function heapUsed(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** Asterisk in the default mode (auto: the lab's dialplan has [twin-bot], so dialplan) and in bridge mode. */
describe.each(['auto', 'bridge'])('chaos (asterisk.bot_leg %s)', (botLeg) => {
  let lab: Lab;
  const rand = random(Number(process.env.CHAOS_SEED ?? 20261121));

  beforeAll(async () => {
    lab = await Lab.start({
      pbx: ['asterisk', 'freeswitch'],
      config: {
        twin: { warmup_timeout_ms: 300 },
        trunk: { cooldown_s: 1, max_concurrent_calls: 80, max_calls_per_second: 1000 },
        asterisk: { bot_answer_timeout_s: 1, bot_leg: botLeg },
        freeswitch: { bot_answer_timeout_s: 1 },
      },
    });
    // The simulators keep no per-call records, so the heap shows only what the product keeps.
    lab.twin.keepRecords = 50;
    lab.ari.keepInvites = 0;
    lab.fs.keepInvites = 0;
    const startedAt = Date.now();
    lab.twin.script(() => flappingTwin(Date.now() - startedAt, rand()));
    for (const kind of ['asterisk', 'freeswitch'] as const) {
      lab.pbx(kind).setBotBehaviour(() => {
        const r = rand();
        if (r < 0.04) return { kind: 'busy', afterMs: 10 };
        if (r < 0.06) return { kind: 'no-answer' };
        return { kind: 'answer', afterMs: Math.floor(rand() * 30), hangupAfterMs: 30 + Math.floor(rand() * 300) };
      });
    }
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it(`${CALLS} calls with Twin flapping and the PBX connections cut twice: one outcome each, nothing left; twice, heap flat`, async () => {
    // Round 1 also warms every code path (JIT, pools, reconnects); the heap is compared over round 2.
    const first = await chaosRound(1);
    const heapBefore = heapUsed();
    const second = await chaosRound(2);

    // The chaos did happen: calls connected, Twin's failures throttled the trunk, callers gave up.
    const count = (status: string) => (first.get(status) ?? 0) + (second.get(status) ?? 0);
    expect(count('CONNECTED')).toBeGreaterThan(CALLS / 4);
    for (const status of ['UNAVAILABLE', 'THROTTLED', 'REJECTED', 'ABANDONED', 'BOT_FAILED']) expect(count(status), status).toBeGreaterThan(0);

    const grownKb = (heapUsed() - heapBefore) / 1024;
    console.log(`chaos: heap ${grownKb.toFixed(0)} KiB after round 2 vs after round 1`);
    // No per-call object outlives its call: ~5 KiB a call at most, of which this test's own record
    // of each outcome is ~1 KiB.
    expect(grownKb).toBeLessThan(1536);
  }, 120_000);

  /** One round: the calls, the cuts, and every check on how they ended. Returns the outcomes by status. */
  async function chaosRound(round: number): Promise<Map<string, number>> {
    const outcomesBefore = lab.outcomes.length;
    const websocketsBefore = lab.ari.websocketsOpened;
    const cuts = [Math.floor(CALLS / 3), Math.floor((2 * CALLS) / 3)];
    const results = await runCalls(CALLS, (i) => { if (cuts.includes(i)) cutConnections(); });
    await settle();

    // Every caller left the PBX one way or another: nobody is stuck in silence.
    expect(results).toHaveLength(CALLS);
    // Every call the product took has exactly one outcome. The PBX refused some itself (Stasis()
    // while the websocket was down) and they went on in the dialplan. Other ways for the product
    // never to see a call: the caller hung up before FreeSWITCH's socket got to `connect`, or
    // before Asterisk's StasisStart, sent into a websocket being cut, could be picked up.
    const outcomes = lab.outcomes.slice(outcomesBefore);
    const perCall = new Map<string, number>();
    for (const o of outcomes) perCall.set(o.callId, (perCall.get(o.callId) ?? 0) + 1);
    expect([...perCall.values()].every((n) => n === 1)).toBe(true);
    // A FreeSWITCH socket lost mid-hold also ends in the dialplan's fallback (socket_lost), but the
    // product had the call: that one has an outcome.
    // (In dialplan mode a report's Stasis() during a cut fails too, but that call was the product's.)
    const refused = (r: (typeof results)[number]) => r.left.kind === 'app-unavailable' && r.left.vars.socket_lost !== 'true'
      && !lab.pbx(r.pbx).wasAnnounced(r.call.id);
    // The shipped dialplan's own trunk check sent these on while the published trunk was closed.
    const skipped = (r: (typeof results)[number]) => r.left.kind === 'continued' && !lab.pbx(r.pbx).wasAnnounced(r.call.id);
    const unseen = (r: (typeof results)[number]) =>
      refused(r) || skipped(r) || (r.left.kind === 'hungup-by-caller' && !lab.pbx(r.pbx).wasAnnounced(r.call.id));
    for (const r of results) {
      if (refused(r)) expect(perCall.has(r.call.id), `${r.call.id} refused by the PBX yet has an outcome`).toBe(false);
      else if (!unseen(r)) expect(perCall.has(r.call.id), `${r.pbx} call ${r.call.id} left as ${r.left.kind} without an outcome`).toBe(true);
    }
    const skippedCount = results.filter(skipped).length;
    const unseenCount = results.filter(unseen).length - skippedCount;
    expect(unseenCount).toBeLessThan(CALLS / 10);
    expect(outcomes.length + results.filter((r) => unseen(r) && !perCall.has(r.call.id)).length).toBe(CALLS);

    const statuses = new Map<string, number>();
    for (const o of outcomes) statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
    console.log(`chaos round ${round}: ${CALLS} calls, outcomes ${JSON.stringify(Object.fromEntries(statuses))}, refused by the PBX ${results.filter(refused).length}, skipped by the dialplan's trunk check ${skippedCount}, never seen ${unseenCount - results.filter(refused).length}`);
    // A caller the dialplan skipped is THROTTLED too, though the product never saw it.
    for (const r of results.filter(skipped)) expect(r.left.vars.TWIN_STATUS).toBe('THROTTLED');
    statuses.set('THROTTLED', (statuses.get('THROTTLED') ?? 0) + skippedCount);
    // The cuts happened and the product came back after each (whether a cut refused any caller
    // depends on timing: while the trunk is throttled the dialplan's own check skips them all).
    expect(lab.ari.websocketsOpened - websocketsBefore).toBeGreaterThanOrEqual(cuts.length);

    // Nothing of ours left in either PBX or in the product.
    await expectNoLeftovers(lab, ['asterisk', 'freeswitch']);
    expect(lab.daemon.asterisk!.activeCalls).toBe(0);
    // A FreeSWITCH call's socket may still be closing after its flow ended (the PBX closes its end
    // when the channel is gone): wait for it, bounded.
    await waitFor(() => lab.daemon.freeswitch!.activeCalls === 0, 'every FreeSWITCH call socket to close', 5000).catch(() => undefined);
    expect(lab.daemon.freeswitch!.activeCalls).toBe(0);
    expect(lab.daemon.gate.snapshot().active).toBe(0);
    return statuses;
  }

  /** Places `count` calls at PER_SECOND, alternating PBXs; some callers hang up early. */
  async function runCalls(count: number, onCall: (i: number) => void): Promise<{ pbx: PbxKind; call: SimCall; left: CallerResult }[]> {
    const pending: Promise<{ pbx: PbxKind; call: SimCall; left: CallerResult }>[] = [];
    for (let i = 0; i < count; i++) {
      onCall(i);
      const pbx: PbxKind = i % 2 === 0 ? 'asterisk' : 'freeswitch';
      const call = lab.pbx(pbx).placeCall({ number: `+1555${String(i).padStart(7, '0')}` });
      const r = rand();
      // A fifth of the callers give up after 0-400 ms; the rest stay until the bot hangs up.
      const hangupTimer = r < 0.2 ? setTimeout(() => call.hangup(), Math.floor(rand() * 400)) : undefined;
      // Connected calls whose bot hangs up end; a caller nobody hangs up is a failure of this test, not a hang.
      const safety = setTimeout(() => call.hangup(), 10_000);
      pending.push(call.left.then((left) => {
        clearTimeout(hangupTimer);
        clearTimeout(safety);
        return { pbx, call, left };
      }));
      await new Promise((resolve) => setTimeout(resolve, 1000 / PER_SECOND));
    }
    return Promise.all(pending);
  }

  /** The ARI websocket and every ESL connection (inbound and the calls' sockets) cut at once. */
  function cutConnections(): void {
    lab.ari.dropWebSockets();
    lab.fs.dropInbound();
    lab.fs.dropOutboundSockets();
  }

  async function settle(): Promise<void> {
    await waitFor(() => lab.daemon.activeCalls === 0, 'every call to leave the product', 15_000);
  }
});

/** Twin in phases: 1.5 s of good service (ids, some slow, some nulls), then 0.5 s of failures. */
function flappingTwin(elapsedMs: number, r: number): TwinBehaviour {
  const failing = Math.floor(elapsedMs / 500) % 4 === 3;
  if (failing) {
    if (r < 0.4) return { kind: 'status', status: r < 0.2 ? 500 : 503 };
    if (r < 0.7) return { kind: 'slow', delayMs: 600 }; // past the warm-up timeout
    return { kind: 'garbage' };
  }
  if (r < 0.7) return { kind: 'id' };
  if (r < 0.8) return { kind: 'null' };
  return { kind: 'slow', delayMs: 120 };
}
