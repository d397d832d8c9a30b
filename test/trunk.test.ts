import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { TrunkGate, type Admission, type TrunkSnapshot } from '../src/core/trunk.js';
import { TrunkAnnouncer, type TrunkWord } from '../src/pbx/shared.js';

const limits = { cooldown_s: 180, max_concurrent_calls: 3, max_calls_per_second: 2 };

function admitted(gate: TrunkGate): Admission {
  const r = gate.admit();
  if (!r.admitted) throw new Error(`expected admission, got ${r.status}`);
  return r.admission;
}

/** A gate that has just been throttled by a failed call. */
function throttledGate(clock: ManualClock, reason = 'HTTP 500'): TrunkGate {
  const gate = new TrunkGate(limits, clock);
  const a = admitted(gate);
  gate.reportFailure(a, reason);
  gate.release(a);
  return gate;
}

describe('trunk gate', () => {
  it('closes for the cool-down after a failure, then lets exactly one probe through', () => {
    const clock = new ManualClock();
    const gate = throttledGate(clock);
    expect(gate.admit()).toEqual({ admitted: false, status: 'THROTTLED' });
    clock.advance(179_999);
    expect(gate.admit()).toEqual({ admitted: false, status: 'THROTTLED' });
    clock.advance(1);
    const probe = admitted(gate);
    expect(probe.probe).toBe(true);
    clock.advance(1000);
    expect(gate.admit()).toEqual({ admitted: false, status: 'THROTTLED' });
    gate.reportSuccess(probe);
    gate.release(probe);
    expect(gate.snapshot().state).toBe('open');
    expect(admitted(gate).probe).toBe(false);
  });

  it('closes again when the probe fails, and allows a new probe if the probe call ends without a verdict', () => {
    const clock = new ManualClock();
    const gate = throttledGate(clock, 'timeout');
    clock.advance(180_000);
    const probe = admitted(gate);
    gate.release(probe); // caller hung up during the warm-up: no verdict
    clock.advance(1000);
    const second = admitted(gate);
    expect(second.probe).toBe(true);
    gate.reportFailure(second, 'HTTP 503');
    gate.release(second);
    expect(gate.snapshot()).toMatchObject({ state: 'throttled', cooldownUntil: clock.now() + 180_000, lastFailure: 'HTTP 503' });
  });

  it('ignores late verdicts of calls admitted before the trunk closed', () => {
    const clock = new ManualClock();
    const gate = new TrunkGate(limits, clock);
    const early = admitted(gate);
    const failing = admitted(gate);
    gate.reportFailure(failing, 'HTTP 500');
    gate.reportSuccess(early);
    expect(gate.snapshot().state).toBe('throttled');
  });

  it('caps concurrent calls and new calls per second', () => {
    const clock = new ManualClock();
    const gate = new TrunkGate(limits, clock);
    const a = admitted(gate);
    admitted(gate);
    expect(gate.admit()).toEqual({ admitted: false, status: 'BUSY' }); // 3rd call in the same second
    clock.advance(1000);
    admitted(gate);
    clock.advance(1000);
    expect(gate.admit()).toEqual({ admitted: false, status: 'BUSY' }); // 3 concurrent
    gate.release(a);
    expect(admitted(gate).probe).toBe(false);
  });

  it('ends the cool-down by the clock, with no call: probing is announced, closed while the probe is in flight, reopened if it ends without a verdict (issue 13, item 13)', async () => {
    const clock = new ManualClock();
    const gate = throttledGate(clock);
    const seen: string[] = [];
    gate.on('change', (s) => seen.push(`${s.state}${s.probeInFlight ? '/probe' : ''}`));
    clock.advance(180_000);
    await Promise.resolve(); // the clock's timer fires on the next tick
    expect(seen).toEqual(['probing']);
    expect(gate.snapshot()).toMatchObject({ state: 'probing', probeInFlight: false });
    const probe = admitted(gate);
    expect(gate.admit()).toEqual({ admitted: false, status: 'THROTTLED' }); // only the probe
    gate.release(probe); // its caller hung up: no verdict
    const second = admitted(gate);
    gate.reportSuccess(second);
    gate.release(second);
    expect(seen).toEqual(['probing', 'probing/probe', 'probing', 'probing/probe', 'open']);
  });

  it('stops its cool-down timer when closed', async () => {
    const clock = new ManualClock();
    const gate = throttledGate(clock);
    expect(clock.sleeping).toBe(1);
    gate.close();
    expect(clock.sleeping).toBe(0);
  });

  it('announces capacity and state changes', () => {
    const clock = new ManualClock();
    const gate = new TrunkGate({ ...limits, max_concurrent_calls: 1 }, clock);
    const seen: string[] = [];
    gate.on('change', (s) => seen.push(`${s.state}${s.atCapacity ? '/full' : ''}`));
    const a = admitted(gate);
    gate.reportFailure(a, 'x');
    gate.release(a);
    expect(seen).toEqual(['open/full', 'throttled/full', 'throttled']);
  });
});

describe('TrunkAnnouncer: the word the dialplan sees while the box is strained', () => {
  const openTrunk = { state: 'open', atCapacity: false, probeInFlight: false } as unknown as TrunkSnapshot;
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('shows OVERLOADED over QUIET, each for its own hold, then the trunk as it is', async () => {
    const clock = new ManualClock();
    const words: TrunkWord[] = [];
    const announcer = new TrunkAnnouncer((word) => words.push(word), clock);
    announcer.set(openTrunk);
    announcer.markQuiet(5000);
    announcer.markOverloaded(300);
    expect(words).toEqual(['NOT_INUSE', 'QUIET', 'OVERLOADED']);
    clock.advance(300);
    await settle();
    expect(words.at(-1)).toBe('QUIET'); // the overload hold ended before the quiet one
    announcer.markQuiet(5000); // a later late caller: the quiet hold runs from now
    clock.advance(4900);
    await settle();
    expect(words.at(-1)).toBe('QUIET');
    for (let i = 0; i < 3; i += 1) { clock.advance(100); await settle(); }
    expect(words.at(-1)).toBe('NOT_INUSE');
    expect(words).toEqual(['NOT_INUSE', 'QUIET', 'OVERLOADED', 'QUIET', 'NOT_INUSE']);
  });
});
