/** Pieces both PBX drivers need: reconnect backoff and publishing the trunk state. */
import type { Clock } from '../clock.js';
import type { TrunkSnapshot } from '../core/trunk.js';
import type { Logger } from '../log.js';

/**
 * Why a call's `ended` signal aborts: its caller hung up. One error for all calls: abort() without
 * a reason builds a DOMException (its stack) per call, which adds up when many callers give up at once.
 */
export const CALLER_GONE = new Error('the caller hung up');

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'stopped';

/** Doubling delay between reconnect attempts: 250 ms up to 10 s, back to the start once connected. */
export class Backoff {
  private delay: number;

  constructor(private readonly minMs = 250, private readonly maxMs = 10_000) {
    this.delay = minMs;
  }

  next(): number {
    const current = this.delay;
    this.delay = Math.min(this.delay * 2, this.maxMs);
    return current;
  }

  reset(): void {
    this.delay = this.minMs;
  }
}

export type TrunkWord = 'NOT_INUSE' | 'BUSY' | 'UNAVAILABLE' | 'PROBING' | 'OVERLOADED' | 'QUIET';

/** Timed states of an open trunk, set by the drivers when the box is short of CPU. */
export interface TrunkStrain {
  /** The product took callers too late: the dialplan sends callers to people. */
  overloaded?: boolean;
  /** The PBX itself is late: the dialplan skips its ringback (Asterisk), callers wait in silence. */
  quiet?: boolean;
}

/**
 * The word the dialplan sees for the trunk. The shipped dialplans skip the product only on
 * UNAVAILABLE: throttled, or probing with the probe call in progress. PROBING (the cool-down is
 * over, the next call is the probe) lets calls through, so the trunk can reopen.
 */
export function trunkWord(trunk: TrunkSnapshot, strain: TrunkStrain = {}): TrunkWord {
  if (trunk.state === 'open') {
    if (strain.overloaded) return 'OVERLOADED';
    if (trunk.atCapacity) return 'BUSY';
    return strain.quiet ? 'QUIET' : 'NOT_INUSE';
  }
  return trunk.state === 'probing' && !trunk.probeInFlight ? 'PROBING' : 'UNAVAILABLE';
}

/**
 * Asterisk's device states have no PROBING, OVERLOADED or QUIET (DEVICE_STATE() would read them
 * back as UNKNOWN): RINGING stands for PROBING, "waiting for its probe call" (a BLF lamp blinks),
 * ONHOLD for OVERLOADED, INUSE for QUIET (open, but busy enough to skip the ringback).
 */
export function asteriskDeviceState(word: TrunkWord): string {
  if (word === 'PROBING') return 'RINGING';
  if (word === 'QUIET') return 'INUSE';
  return word === 'OVERLOADED' ? 'ONHOLD' : word;
}

/** How often a strained trunk's timed states are looked at. */
const STRAIN_STEP_MS = 100;

/**
 * The trunk as the dialplan sees it: the gate's state, and for a short while (each) after the
 * product shed a caller it took too late, OVERLOADED (the shipped dialplans then send callers to
 * people at once, so a starved box catches up instead of queueing each caller on the product only
 * to be refused late), and after the PBX handed over a caller late, QUIET (the shipped Asterisk
 * dialplan then skips `Playtones(ring)`: with a Twin that takes a second, the ringback of the
 * callers waiting is what tips a full box over, and a box without it catches up).
 */
export class TrunkAnnouncer {
  private snapshot?: TrunkSnapshot;
  private readonly until = { overloaded: 0, quiet: 0 };
  private watching = false;
  /** The word last published. */
  private shown?: TrunkWord;

  constructor(private readonly publish: (word: TrunkWord) => void, private readonly clock: Clock) {}

  set(trunk: TrunkSnapshot): void {
    this.snapshot = trunk;
    this.show(trunkWord(trunk, this.strain()));
  }

  markOverloaded(holdMs: number): void {
    this.mark('overloaded', holdMs);
  }

  markQuiet(holdMs: number): void {
    this.mark('quiet', holdMs);
  }

  private mark(kind: keyof TrunkAnnouncer['until'], holdMs: number): void {
    const before = this.strain();
    this.until[kind] = Math.max(this.until[kind], this.clock.now() + holdMs);
    if (before[kind] || !this.snapshot) return;
    this.show(trunkWord(this.snapshot, this.strain()));
    if (!this.watching) void this.endWhenDue();
  }

  private show(word: TrunkWord): void {
    this.shown = word;
    this.publish(word);
  }

  private strain(): Required<TrunkStrain> {
    const now = this.clock.now();
    return { overloaded: this.until.overloaded > now, quiet: this.until.quiet > now };
  }

  /** Republishes as each timed state runs out, until none is left. */
  private async endWhenDue(): Promise<void> {
    this.watching = true;
    for (let strain = this.strain(); strain.overloaded || strain.quiet; strain = this.strain()) {
      const now = this.clock.now();
      const next = Math.min(...[this.until.overloaded, this.until.quiet].filter((t) => t > now));
      // In steps: a state marked meanwhile may end before the one slept on.
      await this.clock.sleep(Math.min(next - now, STRAIN_STEP_MS));
      const word = this.snapshot && trunkWord(this.snapshot, this.strain());
      if (word !== undefined && word !== this.shown) this.show(word);
    }
    this.watching = false;
  }
}

/**
 * Sends only the latest value, one request at a time: a flapping trunk costs one request in flight
 * plus one for the final state, not one per change. Resent after a reconnect with flush().
 */
export class LatestValuePublisher {
  private value?: string;
  private sending = false;

  constructor(
    private readonly send: (value: string) => Promise<unknown>,
    private readonly canSend: () => boolean,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  set(value: string): void {
    this.value = value;
    void this.flush();
  }

  async flush(): Promise<void> {
    if (this.sending || !this.canSend() || this.value === undefined) return;
    this.sending = true;
    let sent: string | undefined;
    try {
      do {
        sent = this.value;
        await this.send(sent);
      } while (sent !== this.value);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `could not publish ${this.what}`);
    } finally {
      this.sending = false;
    }
  }
}
