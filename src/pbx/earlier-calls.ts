/**
 * Calls an earlier run of the product sent to Twin and never counted (it was killed, or stopped
 * without waiting for them), as the call journal hands them to this run's driver. The driver
 * follows the ones still alive to their end; the rest ended while no run was up. Either way each
 * is reported once, with what is known.
 */
import type { JournalCall } from '../core/call-journal.js';
import type { Logger } from '../log.js';
import type { CallStatus, EndedBy } from '../core/types.js';

/** How an earlier run's call ended, as far as this run can tell. */
export interface EarlierCallEnd {
  status: Extract<CallStatus, 'CONNECTED' | 'TRANSFERRED' | 'TRANSFER_FAILED' | 'BOT_FAILED' | 'ABANDONED'>;
  endedBy?: EndedBy | 'unknown';
  transferTarget?: string;
  detail: string;
}

export type EarlierCallReport = (call: JournalCall, end: EarlierCallEnd) => void;

/** Said of every call followed here: the outcome line tells it was sent to Twin before a restart. */
export const TAKEN_OVER = 'sent to Twin before the product restarted';
export const ENDED_WHILE_DOWN = 'ended while the product was not running';

export class EarlierCalls {
  /** Call id → the call, and whether this run has seen it alive. */
  private readonly calls = new Map<string, { call: JournalCall; seen: boolean }>();
  private announced: boolean;

  constructor(calls: readonly JournalCall[] = [], private readonly report: EarlierCallReport = () => {}) {
    for (const call of calls) this.calls.set(call.callId, { call, seen: false });
    this.announced = calls.length === 0;
  }

  /** Once, after the first look at the PBX: how many calls this run follows. */
  announce(log: Logger): void {
    if (this.announced) return;
    this.announced = true;
    log.info({ following: this.calls.size }, 'looked for the calls an earlier run sent to Twin: following the ones still going on');
  }

  has(callId: string): boolean {
    return this.calls.has(callId);
  }

  get size(): number {
    return this.calls.size;
  }

  ids(): string[] {
    return [...this.calls.keys()];
  }

  /**
   * After a (re)connection to the PBX: whether this call's channel still exists. One never seen
   * alive by this run ended while no run was up; one seen before ended while the connection was down.
   */
  checked(callId: string, alive: boolean, pbxName: string): void {
    const entry = this.calls.get(callId);
    if (!entry) return;
    if (alive) {
      entry.seen = true;
      return;
    }
    const detail = entry.seen ? `ended while the connection to ${pbxName} was down; ${TAKEN_OVER}` : ENDED_WHILE_DOWN;
    const unknownAnswer = entry.call.setupMs === undefined ? '; whether the bot answered is not known' : '';
    this.end(callId, { status: 'CONNECTED', endedBy: 'unknown', detail: `${detail}${unknownAnswer}` });
  }

  /** The call ended (or its part with Twin did): reported once; later ends of the same call are ignored. */
  end(callId: string, end: EarlierCallEnd): void {
    const entry = this.calls.get(callId);
    if (!entry) return;
    this.calls.delete(callId);
    this.report(entry.call, end);
  }

  /** A call flow of this run took the call on (the PBX handed it to us again): that flow counts it. */
  forget(callId: string): void {
    this.calls.delete(callId);
  }
}
