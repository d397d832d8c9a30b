/** The handover delay across two clocks (Asterisk's StasisStart stamp against our receipt). */
import { describe, expect, it } from 'vitest';
import { delayBetween, HandoverDelay } from '../src/core/handover-delay.js';

describe('HandoverDelay', () => {
  function estimator(offsetMs: number) {
    let now = 1_796_000_000_000;
    const delay = new HandoverDelay(() => now);
    /** A call the PBX stamped `lateMs` before we take it, with the PBX's clock `offsetMs` behind ours. */
    const take = (lateMs: number, afterMs = 10) => {
      now += afterMs;
      return delay.observe(now - offsetMs - lateMs);
    };
    return { take };
  }

  it('measures against the quickest hand-over seen, whatever the two clocks differ by', () => {
    for (const offset of [0, 7_000, -3_500]) {
      const { take } = estimator(offset);
      expect(take(2)).toBe(0);
      expect(take(5)).toBeCloseTo(3, 0);
      expect(take(4002)).toBeCloseTo(4000, 0);
      expect(take(1)).toBe(0); // quicker than any before: the new floor
      expect(take(3001)).toBeCloseTo(3000, 0);
    }
  });

  it('lets the floor rise by 1 ms a second, so a PBX clock stepped back does not look late for ever', () => {
    const { take } = estimator(0);
    expect(take(0)).toBe(0);
    // The PBX's clock goes 5 s back: every call now looks 5 s late, less 1 ms per second since.
    expect(take(5000, 1000)).toBeCloseTo(4999, 0);
    expect(take(5000, 600_000)).toBeCloseTo(4399, 0);
    expect(take(5000, 5_000_000)).toBe(0);
  });

  it('takes a jump of over a minute as a clock step, not as a delay', () => {
    const { take } = estimator(0);
    expect(take(0)).toBe(0);
    expect(take(3_600_000)).toBe(0);
    expect(take(3_600_500)).toBeCloseTo(500, 0);
  });

  it('gives nothing for a missing or unparsable stamp', () => {
    const delay = new HandoverDelay(() => 5);
    expect(delay.observe(Date.parse(''))).toBeUndefined();
    expect(delay.observe(0)).toBeUndefined();
  });
});

describe('delayBetween (two stamps on the PBX clock)', () => {
  it('is the difference, within a minute', () => {
    expect(delayBetween(1000, 4500)).toBe(3500);
    expect(delayBetween(1000, 999)).toBeUndefined();
    expect(delayBetween(1000, 1000 + 61_000)).toBeUndefined();
    expect(delayBetween(Number.NaN, 5)).toBeUndefined();
  });
});
