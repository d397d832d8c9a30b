/**
 * A campaign: many outbound calls with bounded concurrency and calls per second, warm-ups batched
 * (one request for up to batch_size calls), numbers Twin rejects skipped, and the whole campaign
 * paused while the trunk is throttled, resuming by itself after the cool-down (one probe first).
 * Every step is journalled first (journal.ts), so a restart dials nobody twice.
 *
 * If the journal cannot be written (disk full, …) no further call starts: nothing would stop a rerun
 * from dialling it again. Calls in progress end as after stop().
 *
 * Emits 'result' (row key, OutboundResult), 'paused' (until, reason), 'resumed' and
 * 'journal-failed' (JournalWriteError).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import type { Gate } from '../core/trunk.js';
import type { Logger } from '../log.js';
import type { CampaignRow } from './campaign-file.js';
import { JournalWriteError, type Journal, type RowState } from './journal.js';
import type { AdmittedCall, Outbound, OutboundResult, OutboundStatus } from './outbound.js';

export interface CampaignLimits {
  concurrency: number;
  callsPerSecond: number;
  batchSize: number;
}

export interface CampaignDeps {
  outbound: Outbound;
  gate: Gate;
  clock: Clock;
  log: Logger;
  /** Lets the daemon wait for calls in progress when it stops. */
  track: <T>(work: Promise<T>) => Promise<T>;
}

export interface CampaignSummary {
  total: number;
  counts: Partial<Record<OutboundStatus, number>>;
  /** Rows still without an outcome (the campaign was stopped). */
  pending: number;
  warmupRequests: number;
}

/** How long a free slot may wait for others, so that warm-ups go out in fuller batches. */
const BATCH_WAIT_MS = 100;

type Queued = CampaignRow & { request: NonNullable<CampaignRow['request']> };
type CampaignCall = AdmittedCall & { key: string };

export class Campaign extends EventEmitter {
  readonly results = new Map<string, OutboundResult>();
  /** Why the campaign stopped dialling by itself: its journal could not be written. */
  journalError?: JournalWriteError;
  private readonly queue: Queued[] = [];
  private readonly byKey = new Map<string, Queued>();
  private inFlight = 0;
  private readonly starts: number[] = [];
  private wake = new AbortController();
  private stopping = false;
  private paused = false;
  private warmupRequests = 0;
  private fillingSince?: number;

  constructor(
    private readonly rows: CampaignRow[],
    private readonly journal: Journal,
    private readonly limits: CampaignLimits,
    private readonly deps: CampaignDeps,
  ) {
    super();
  }

  /** Runs until every row has an outcome, or stop() was called and the calls in progress ended. */
  async run(): Promise<CampaignSummary> {
    this.resume();
    while (this.inFlight > 0 || (this.queue.length > 0 && !this.stopping)) {
      const wait = this.stopping ? Infinity : await this.startBatch();
      if (wait > 0) await this.deps.clock.sleep(Math.min(wait, 2 ** 31 - 1), this.wake.signal);
      if (this.wake.signal.aborted) this.wake = new AbortController();
    }
    return this.summary();
  }

  /** Stops starting calls; calls in progress finish and are journalled. */
  stop(): void {
    this.stopping = true;
    this.wake.abort();
  }

  summary(): CampaignSummary {
    const counts: Partial<Record<OutboundStatus, number>> = {};
    for (const row of this.rows) {
      const status = this.results.get(row.key)?.status ?? (row.invalid ? 'invalid' : undefined);
      if (status) counts[status] = (counts[status] ?? 0) + 1;
    }
    const finished = Object.values(counts).reduce((a, b) => a + b, 0);
    return { total: this.rows.length, counts, pending: this.rows.length - finished, warmupRequests: this.warmupRequests };
  }

  /** Takes what the journal already knows: finished rows are skipped, half-dialled ones closed as unknown. */
  private resume(): void {
    for (const row of this.rows) {
      if (row.invalid || !row.request) continue;
      const state = this.journal.rows.get(row.key);
      if (state?.result) {
        this.results.set(row.key, state.result);
      } else if (state?.dialledId !== undefined || state?.torn) {
        this.record(row.key, unknownOutcome(row.request, state));
      } else {
        this.queue.push(row as Queued);
        this.byKey.set(row.key, row as Queued);
      }
    }
  }

  /** Starts one batch if limits allow; returns how long to wait before trying again (0: try at once). */
  private async startBatch(): Promise<number> {
    const now = this.deps.clock.now();
    while (this.starts.length > 0 && now - this.starts[0]! >= 1000) this.starts.shift();
    const room = Math.min(this.limits.concurrency - this.inFlight, this.limits.batchSize, this.queue.length,
      this.limits.callsPerSecond - this.starts.length);
    if (this.queue.length === 0 || this.limits.concurrency - this.inFlight <= 0) return Infinity; // woken when a call ends
    if (room <= 0) return this.starts[0]! + 1000 - now;
    // Calls end one by one: give a few more a moment to end, for one warm-up request instead of many.
    if (room < Math.min(this.limits.batchSize, this.queue.length) && this.inFlight > 0) {
      this.fillingSince ??= now;
      if (now - this.fillingSince < BATCH_WAIT_MS) return BATCH_WAIT_MS - (now - this.fillingSince);
    }
    this.fillingSince = undefined;
    const batch: CampaignCall[] = [];
    let refusal: 'THROTTLED' | 'BUSY' | undefined;
    while (batch.length < room) {
      const gate = await this.deps.gate.admit();
      if (!gate.admitted) {
        refusal = gate.status;
        break;
      }
      const row = this.queue.shift()!;
      batch.push({ id: randomUUID(), request: row.request, admission: gate.admission, key: row.key });
    }
    if (batch.length === 0) return this.waitForTrunk(refusal ?? 'BUSY', now);
    if (this.paused) {
      this.paused = false;
      this.emit('resumed');
    }
    for (let i = 0; i < batch.length; i++) this.starts.push(now);
    this.inFlight += batch.length;
    void this.warmUpAndDial(batch);
    return 0;
  }

  private waitForTrunk(refusal: 'THROTTLED' | 'BUSY', now: number): number {
    if (refusal === 'BUSY') return this.inFlight > 0 ? Infinity : 50; // the trunk's own capacity: wait for a call to end
    const trunk = this.deps.gate.snapshot();
    const until = trunk.cooldownUntil ?? now;
    if (!this.paused) {
      this.paused = true;
      this.emit('paused', until, trunk.lastFailure ?? 'Twin unavailable');
    }
    // After the cool-down one probe call goes first; while it runs, wait for it to end.
    return until > now ? until - now : this.inFlight > 0 ? Infinity : 50;
  }

  private async warmUpAndDial(batch: CampaignCall[]): Promise<void> {
    this.warmupRequests += 1;
    let warmed: Awaited<ReturnType<Outbound['warmUp']>>;
    try {
      warmed = await this.deps.track(this.deps.outbound.warmUp(batch));
    } catch (err) {
      this.deps.log.error({ err }, 'campaign warm-up failed');
      for (const call of batch) this.deps.gate.release(call.admission);
      warmed = batch.map((call) => ({ call, result: this.deps.outbound.finish({ ...describe(call), status: 'error', detail: (err as Error).message }) }));
    }
    const requeue: Queued[] = [];
    for (const { call, session, result } of warmed) {
      const { key } = call as CampaignCall;
      if (session && !this.journalError && this.journalled(() => this.journal.markDialling(key, call.id))) {
        void this.deps.track(this.deps.outbound.dial(call, session)).then((r) => this.callEnded(key, r));
        continue;
      }
      // A session left undialled (the journal failed): no line says it was dialled, so a rerun calls it.
      if (session) this.deps.gate.release(call.admission);
      this.inFlight -= 1;
      // Twin unavailable, or no connection to it in time: the row is tried again.
      if (result?.status === 'unavailable' || result?.status === 'over-capacity') requeue.push(this.byKey.get(key)!);
      else if (result) this.record(key, result.status === 'rejected' ? this.deps.outbound.finish(result) : result);
    }
    // Twin was unavailable: the trunk is throttled now; these rows go first after the cool-down.
    this.queue.unshift(...requeue);
    this.wake.abort();
  }

  private callEnded(key: string, result: OutboundResult): void {
    this.inFlight -= 1;
    this.record(key, result);
    this.wake.abort();
  }

  /** The outcome is reported even if the journal cannot keep it (a rerun then sees the row as unknown). */
  private record(key: string, result: OutboundResult): void {
    this.journalled(() => this.journal.markDone(key, result));
    this.results.set(key, result);
    this.emit('result', key, result);
  }

  /** Runs a journal write; a failed one stops the campaign at once. */
  private journalled(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      if (!(err instanceof JournalWriteError)) throw err;
      if (!this.journalError) {
        this.journalError = err;
        this.emit('journal-failed', err);
      }
      this.stop();
      return false;
    }
  }
}

/** A row a previous run may have dialled: never dialled again. */
function unknownOutcome(request: NonNullable<CampaignRow['request']>, state: RowState): OutboundResult {
  const detail = state.dialledId !== undefined
    ? 'was being dialled when the previous run stopped: outcome unknown, not dialled again'
    : 'its journal entry was cut off when the previous run stopped (it may have been dialled): outcome unknown, not dialled again';
  return { id: state.dialledId ?? '', to: request.to, from: request.from, bot: request.bot ?? '', pbx: request.pbx, status: 'unknown', detail };
}

function describe(call: AdmittedCall): Pick<OutboundResult, 'id' | 'to' | 'from' | 'bot' | 'pbx'> {
  return { id: call.id, to: call.request.to, from: call.request.from, bot: call.request.bot ?? '', pbx: call.request.pbx };
}
