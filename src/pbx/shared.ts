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

export type TrunkWord = 'NOT_INUSE' | 'BUSY' | 'UNAVAILABLE' | 'PROBING' | 'OVERLOADED';

/**
 * The word the dialplan sees for the trunk. The shipped dialplans skip the product only on
 * UNAVAILABLE: throttled, or probing with the probe call in progress. PROBING (the cool-down is
 * over, the next call is the probe) lets calls through, so the trunk can reopen.
 */
export function trunkWord(trunk: TrunkSnapshot, overloaded = false): TrunkWord {
  if (trunk.state === 'open') return overloaded ? 'OVERLOADED' : trunk.atCapacity ? 'BUSY' : 'NOT_INUSE';
  return trunk.state === 'probing' && !trunk.probeInFlight ? 'PROBING' : 'UNAVAILABLE';
}

/**
 * Asterisk's device states have no PROBING or OVERLOADED (DEVICE_STATE() would read them back as
 * UNKNOWN): RINGING stands for PROBING, "waiting for its probe call" (a BLF lamp blinks), and
 * ONHOLD for OVERLOADED.
 */
export function asteriskDeviceState(word: TrunkWord): string {
  if (word === 'PROBING') return 'RINGING';
  return word === 'OVERLOADED' ? 'ONHOLD' : word;
}

/**
 * The trunk as the dialplan sees it: the gate's state, and for a short while after the product
 * shed a caller it took too late, OVERLOADED (while the trunk is open): the shipped dialplans then
 * send callers to people at once, so a starved box catches up instead of queueing each caller on
 * the product only to be refused late.
 */
export class TrunkAnnouncer {
  private snapshot?: TrunkSnapshot;
  private overloadedUntil = 0;
  private watching = false;

  constructor(private readonly publish: (word: TrunkWord) => void, private readonly clock: Clock) {}

  set(trunk: TrunkSnapshot): void {
    this.snapshot = trunk;
    this.publish(trunkWord(trunk, this.overloaded));
  }

  markOverloaded(holdMs: number): void {
    const was = this.overloaded;
    this.overloadedUntil = this.clock.now() + holdMs;
    if (was || !this.snapshot) return;
    this.publish(trunkWord(this.snapshot, true));
    if (!this.watching) void this.endWhenDue();
  }

  private get overloaded(): boolean {
    return this.overloadedUntil > this.clock.now();
  }

  private async endWhenDue(): Promise<void> {
    this.watching = true;
    while (this.overloaded) await this.clock.sleep(this.overloadedUntil - this.clock.now());
    this.watching = false;
    if (this.snapshot) this.publish(trunkWord(this.snapshot));
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
