/**
 * How late callers reach the product: the time between the PBX handing a call over (its dialplan's
 * `Stasis()` / `socket`) and the product taking it. Past `trunk.max_handover_delay_ms` the box is
 * over capacity, and the caller goes to its fallback at once instead of waiting in line (issue 20).
 */

/**
 * For a PBX whose hand-over stamp is on its own clock and the receipt on ours (Asterisk's StasisStart
 * `timestamp`). The two clocks may differ (a PBX on another host): their offset is taken as the
 * smallest (receipt − stamp) seen, i.e. the clock offset plus the fastest delivery, so a delay is
 * measured against the quickest hand-over seen. That floor may rise by `driftMsPerS` (clocks drift; a
 * PBX clock stepped back must not look like a late call for ever), and a delay over a minute is
 * taken as a clock step, not a wait: no caller waits that long in a dialplan that works.
 */
export class HandoverDelay {
  private floor?: { offsetMs: number; at: number };

  /** now: our clock in ms; give it a monotonic one (a step of our own clock would look like a delay). */
  constructor(private readonly now: () => number, private readonly driftMsPerS = 1) {}

  /** The delay of a call the PBX stamped at `stampMs` (its clock) and we take now; undefined if unknown. */
  observe(stampMs: number): number | undefined {
    if (!Number.isFinite(stampMs) || stampMs <= 0) return undefined;
    const now = this.now();
    const offsetMs = now - stampMs;
    const floor = this.floor === undefined ? offsetMs : this.floor.offsetMs + ((now - this.floor.at) * this.driftMsPerS) / 1000;
    if (offsetMs <= floor || offsetMs - floor > MAX_PLAUSIBLE_DELAY_MS) {
      this.floor = { offsetMs, at: now };
      return 0;
    }
    this.floor = { offsetMs: floor, at: now };
    return offsetMs - floor;
  }
}

/** Longer than any caller waits for a working product: a clock step, not a delay. */
export const MAX_PLAUSIBLE_DELAY_MS = 60_000;

/**
 * The delay between two stamps on the PBX's own clock (FreeSWITCH: the dialplan's twin_handover_us
 * before `socket`, and the CHANNEL_DATA the product got on connecting), no clock offset involved.
 */
export function delayBetween(handedOverMs: number, takenMs: number): number | undefined {
  if (!Number.isFinite(handedOverMs) || !Number.isFinite(takenMs) || handedOverMs <= 0) return undefined;
  const delay = takenMs - handedOverMs;
  return delay >= 0 && delay <= MAX_PLAUSIBLE_DELAY_MS ? delay : undefined;
}

/** monotonic ms for HandoverDelay: the wall clock at start, moved on by the monotonic one. */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}
