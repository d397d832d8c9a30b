/**
 * Outbound calling, the vendor's recommended order: warm up first (one request may carry many
 * calls), dial the subscriber only if Twin gave an id, and on answer connect to the bot with that
 * id while the session is young enough (src/core/call-flow.ts renews or drops an old one).
 *
 * Emits 'progress' ({ id, state }) as a call moves on, and 'result' (OutboundResult) once.
 */
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { botTarget, runAnsweredOutbound, TrunkSlot, warmupRequest, type FlowDeps, type WarmSession } from '../core/call-flow.js';
import { pbxSettings } from '../config/schema.js';
import { selectRoute, type Route } from '../core/route.js';
import type { Admission } from '../core/trunk.js';
import type { CallOutcome, DialRequest, PbxDialer } from '../core/types.js';
import type { WarmupResult } from '../twin/warmup.js';
import type { CallRequest } from './request.js';

export type OutboundStatus =
  | 'connected' | 'transferred' | 'transfer-failed' | 'rejected' | 'no-answer' | 'busy' | 'failed' | 'bot-failed' | 'stale'
  | 'throttled' | 'over-capacity' | 'unavailable' | 'abandoned' | 'error' | 'unknown' | 'invalid';

/**
 * A call's states, in order (the dialer API's `state`; README, "Dialer API"). `queued`: accepted,
 * not yet let through the trunk gate (with a cluster that takes a Redis round trip). A call may
 * jump to `ended` from any state.
 */
export const CALL_STATES = ['queued', 'warming-up', 'ringing', 'connecting', 'connected', 'ended'] as const;
export type CallState = (typeof CALL_STATES)[number];

/** Who ended a connected outbound call: the subscriber we dialled, the bot, or (after a transfer) the person. */
export type OutboundEndedBy = 'subscriber' | 'bot' | 'target' | 'unknown';

export interface OutboundResult {
  id: string;
  to: string;
  from: string;
  bot: string;
  pbx: CallRequest['pbx'];
  status: OutboundStatus;
  twinId?: string;
  detail?: string;
  warmupMs?: number;
  /** From the dial to the answer (or the failure). */
  ringMs?: number;
  /** From the answer to the bot answering. */
  setupMs?: number;
  endedBy?: OutboundEndedBy;
}

/** A call let through the trunk gate, about to be warmed up. */
export interface AdmittedCall {
  id: string;
  request: CallRequest;
  admission: Admission;
}

export interface OutboundDeps extends FlowDeps {
  dialers: Partial<Record<CallRequest['pbx'], PbxDialer>>;
}

export class Outbound extends EventEmitter {
  constructor(private readonly deps: OutboundDeps) {
    super();
  }

  private get clock(): Clock {
    return this.deps.clock;
  }

  private get log(): Logger {
    return this.deps.log;
  }

  /** One call, now: throttled, over capacity or no bot endpoint in the PBX → that result at once, without a warm-up. */
  async place(id: string, request: CallRequest): Promise<OutboundResult> {
    const missing = this.deps.dialers[request.pbx]?.botEndpointMissing;
    if (missing) return this.finish({ ...this.describe(id, request), status: 'unavailable', detail: missing });
    const gate = await this.deps.gate.admit();
    if (!gate.admitted) {
      const status = gate.status === 'THROTTLED' ? 'throttled' : 'over-capacity';
      const until = this.deps.gate.snapshot().cooldownUntil;
      const detail = status === 'throttled' ? `Twin is throttled${until ? ` until ${new Date(until).toISOString()}` : ''}` : 'at the configured call capacity';
      return this.finish({ ...this.describe(id, request), status, detail });
    }
    const call = { id, request, admission: gate.admission };
    const [warm] = await this.warmUp([call]);
    return warm!.session ? this.dial(call, warm!.session) : this.finish(warm!.result!);
  }

  /**
   * One warm-up request for the batch. Each call comes back with a session (dial it) or a result
   * not yet announced with finish(): rejected, or Twin unavailable (the trunk is then throttled,
   * and a campaign tries the call again later). Admissions of calls that stop here are released.
   */
  async warmUp(batch: AdmittedCall[]): Promise<{ call: AdmittedCall; session?: WarmSession; result?: OutboundResult }[]> {
    for (const call of batch) this.progress(call.id, 'warming-up');
    const config = this.deps.config();
    const sentAt = this.clock.now();
    const answers = await this.deps.twin.warmUpBatch(batch.map((c) => warmupRequest({
      id: c.id, caller: c.request.from, dialed: c.request.to, direction: 'outbound',
    }, this.route(c.request), config)), { async: false });
    const warmupMs = this.clock.now() - sentAt;
    return batch.map((call) => {
      const warm: WarmupResult = answers.get(call.id) ?? { kind: 'unavailable', reason: 'no answer for the call' };
      if (warm.kind === 'accepted') {
        this.deps.gate.reportSuccess(call.admission);
        return { call, session: { twinId: warm.twinId, sentAt, warmupMs } };
      }
      // The verdict before the release: a cluster's Redis forgets the probe with its slot.
      if (warm.kind === 'rejected') {
        this.deps.gate.reportSuccess(call.admission);
        this.deps.gate.release(call.admission);
        return { call, result: { ...this.describe(call.id, call.request), status: 'rejected', warmupMs, detail: 'Twin answered null: not dialled' } };
      }
      if (warm.kind === 'overloaded') {
        this.deps.gate.release(call.admission); // ours, not Twin's: the trunk stays open
        return { call, result: { ...this.describe(call.id, call.request), status: 'over-capacity', warmupMs, detail: warm.reason } };
      }
      const reason = warm.kind === 'unavailable' ? warm.reason : 'warm-up aborted';
      this.deps.gate.reportFailure(call.admission, reason);
      this.deps.gate.release(call.admission);
      return { call, result: { ...this.describe(call.id, call.request), status: 'unavailable', warmupMs, detail: reason } };
    });
  }

  /** Rings the subscriber; answered, runs the outbound call flow. Releases the call's admission. */
  async dial(call: AdmittedCall, session: WarmSession): Promise<OutboundResult> {
    const { id, request } = call;
    const base = { ...this.describe(id, request), twinId: session.twinId, warmupMs: session.warmupMs };
    const slot = new TrunkSlot(this.deps.gate, call.admission);
    try {
      const dialer = this.deps.dialers[request.pbx];
      if (!dialer) return this.finish({ ...base, status: 'error', detail: `${request.pbx} is not configured` });
      this.progress(id, 'ringing');
      const ringAt = this.clock.now();
      const dial = await dialer.originate({
        id, to: request.to, from: request.from, ringTimeoutS: this.deps.config().outbound.ring_timeout_s, botLeg: this.botLeg(id, request, session),
      });
      const ringMs = this.clock.now() - ringAt;
      if (dial.kind === 'failed') {
        const status = dial.reason === 'unavailable' ? 'failed' : dial.reason;
        return this.finish({ ...base, status, ringMs, detail: dial.detail });
      }
      this.progress(id, 'connecting');
      const outcome = await runAnsweredOutbound(dial.call, this.route(request), session, slot, {
        ...this.deps, onConnected: () => this.progress(id, 'connected'),
      });
      return this.finish({ ...base, ...fromOutcome(outcome), ringMs });
    } catch (err) {
      this.log.error({ callId: id, err }, 'outbound call failed');
      return this.finish({ ...base, status: 'error', detail: (err as Error).message });
    } finally {
      slot.release();
    }
  }

  /** The result of a call that will not be tried again, announced once. */
  finish(result: OutboundResult): OutboundResult {
    this.progress(result.id, 'ended');
    this.log.info({ outbound: result }, `outbound call ${result.status}`);
    this.emit('result', result);
    return result;
  }

  /**
   * The bot leg as the answered call will open it (the subscriber's call: caller = our caller id),
   * for a PBX that needs it before the dial. The PBXs that connect after the answer ignore it.
   */
  private botLeg(id: string, request: CallRequest, session: WarmSession): DialRequest['botLeg'] {
    const config = this.deps.config();
    const target = botTarget({ id, caller: request.from, callerName: '', dialed: request.to }, this.route(request), config, session.twinId);
    return { target, answerTimeoutS: pbxSettings(config, request.pbx).bot_answer_timeout_s, sessionSentAt: session.sentAt, maxAgeMs: config.session.max_age_s * 1000 };
  }

  private route(request: CallRequest): Route {
    const hints: Record<string, string> = { record: request.record ? 'yes' : 'no' };
    if (request.bot) hints.bot = request.bot;
    if (request.externalId) hints.external_id = request.externalId;
    for (const [k, v] of Object.entries(request.variables)) hints[`var_${k}`] = v;
    return selectRoute(this.deps.config().routes, { hints, dialed: request.to, caller: request.from });
  }

  private describe(id: string, request: CallRequest) {
    return { id, to: request.to, from: request.from, bot: this.route(request).bot, pbx: request.pbx };
  }

  private progress(id: string, state: CallState): void {
    this.emit('progress', { id, state });
  }
}

export function fromOutcome(outcome: CallOutcome): Pick<OutboundResult, 'status' | 'detail' | 'twinId' | 'warmupMs' | 'endedBy' | 'setupMs'> {
  const status: Record<CallOutcome['status'], OutboundStatus> = {
    CONNECTED: 'connected', TRANSFERRED: 'transferred', TRANSFER_FAILED: 'transfer-failed', REJECTED: 'rejected', UNAVAILABLE: 'unavailable', THROTTLED: 'throttled', BUSY: 'over-capacity',
    BOT_FAILED: 'bot-failed', STALE: 'stale', ERROR: 'error', ABANDONED: 'abandoned',
  };
  const picked: ReturnType<typeof fromOutcome> = { status: status[outcome.status], setupMs: outcome.setupMs };
  if (outcome.detail !== undefined) picked.detail = outcome.detail;
  if (outcome.twinId !== undefined) picked.twinId = outcome.twinId;
  if (outcome.warmupMs !== undefined) picked.warmupMs = outcome.warmupMs;
  // The flow's "caller" is the channel that came to us: here, the subscriber.
  if (outcome.endedBy !== undefined) picked.endedBy = outcome.endedBy === 'caller' ? 'subscriber' : outcome.endedBy;
  return picked;
}
