/**
 * Outbound calls over Twilio: one Calls API request creates the call with inline TwiML that dials
 * the bot with the warmed-up session's headers as soon as the subscriber answers. So the bot leg is
 * fixed before the phone rings, and the ring time is cut to what the session's lifetime has left.
 */
import type { Clock } from '../../clock.js';
import type { TwilioConfig } from '../../config/schema.js';
import type { DialRequest, DialResult, PbxDialer } from '../../core/types.js';
import type { Logger } from '../../log.js';
import type { ServerResponse } from 'node:http';
import { CallsApi } from './calls-api.js';
import { TwilioOutboundCall } from './outbound-call.js';
import { send } from './twilio-call.js';
import { dialBot, dialBotInline, hangupTwiml } from './twiml.js';
import type { OutboundWebhookKind } from './webhook-server.js';

/** Where Twilio tells the daemon about its outbound calls (outbound_status: callbacks). */
export interface OutboundWebhookUrls {
  status: string;
  dialAction: string;
  botStatus: string;
}

/** Status callbacks of a call whose create has not answered yet (Twilio may call back first), at most. */
const EARLY_KEPT = 1000;

/** Kept between the subscriber's answer and the bot's INVITE (Twilio runs the TwiML, opens the leg). */
const ANSWER_TO_INVITE_S = 2;
/** Twilio's smallest useful ring time; below it the call is not placed. */
const MIN_RING_S = 5;

export class TwilioDialer implements PbxDialer {
  readonly pbx = 'twilio' as const;
  private readonly api: CallsApi;
  private readonly calls = new Map<string, TwilioOutboundCall>();
  /** The same calls by CallSid: callbacks name them so. */
  private readonly bySid = new Map<string, TwilioOutboundCall>();
  private readonly early = new Map<string, Record<string, string>[]>();
  /** Ringing calls' dials, settled at once when the product stops. */
  private readonly dials = new Map<string, (result: DialResult) => void>();

  constructor(
    private readonly cfg: TwilioConfig, private readonly log: Logger, private readonly clock: Clock,
    /** Set when Twilio can reach the daemon (its public_url): calls are followed by callbacks. */
    private readonly callbacks?: OutboundWebhookUrls,
  ) {
    this.api = new CallsApi({ apiUrl: cfg.api_url, accountSid: cfg.account_sid, authToken: cfg.auth_token });
  }

  async originate(request: DialRequest): Promise<DialResult> {
    const leg = request.botLeg;
    if (!leg) return { kind: 'failed', reason: 'error', detail: 'no bot leg for the Twilio call' };
    const leftS = Math.floor((leg.sessionSentAt + leg.maxAgeMs - this.clock.now()) / 1000) - ANSWER_TO_INVITE_S;
    const ringTimeoutS = Math.min(request.ringTimeoutS, leftS);
    if (ringTimeoutS < MIN_RING_S) {
      return { kind: 'failed', reason: 'error', detail: `the Twin session has ${Math.max(leftS, 0)} s left: too little to ring the subscriber` };
    }
    let sid: string;
    try {
      sid = (await this.api.create({ To: request.to, From: request.from, Timeout: String(ringTimeoutS), ...this.following(leg) })).sid;
    } catch (err) {
      return { kind: 'failed', reason: 'error', detail: `Twilio did not create the call: ${(err as Error).message}` };
    }
    this.log.info({ callId: request.id, twilioCallSid: sid, ringTimeoutS }, 'Twilio call created');
    const call = new TwilioOutboundCall(sid, { ...request, target: leg.target, ringTimeoutS, answerTimeoutS: leg.answerTimeoutS }, {
      api: this.api, log: this.log, pollIntervalMs: this.cfg.poll_interval_ms, callbacks: this.callbacks !== undefined,
      done: (c) => { this.calls.delete(c.id); this.bySid.delete(c.sid); },
    });
    this.calls.set(request.id, call);
    this.bySid.set(sid, call);
    for (const params of this.early.get(sid) ?? []) call.onStatus(params);
    this.early.delete(sid);
    return new Promise<DialResult>((settle) => {
      this.dials.set(request.id, settle);
      void call.rung().then((result) => {
        if (this.dials.has(request.id)) return this.settleDial(request.id, result);
        // Answered just as the product stopped: its dial already failed, so nobody else ends it.
        if (result.kind === 'answered') void result.call.release();
      });
    });
  }

  /**
   * The call's TwiML and how Twilio reports on it. With callbacks: status callbacks, the <Dial>
   * action and the <Sip> status at the daemon's public URL. Without (the CLI): inline TwiML that
   * pauses after the bot leg, so that a read of the API sees who hung up first.
   */
  private following(leg: NonNullable<DialRequest['botLeg']>): Record<string, string | string[]> {
    if (!this.callbacks) return { Twiml: dialBotInline(leg.target, leg.answerTimeoutS, this.pauseAfterBotS) };
    return {
      Twiml: dialBot(leg.target, leg.answerTimeoutS, { action: this.callbacks.dialAction, botStatus: this.callbacks.botStatus }),
      StatusCallback: this.callbacks.status, StatusCallbackMethod: 'POST', StatusCallbackEvent: ['ringing', 'answered', 'completed'],
    };
  }

  /** A signed callback about an outbound call (the daemon's webhook server checked the signature). */
  onWebhook(kind: OutboundWebhookKind, params: Record<string, string>, res: ServerResponse): void {
    if (kind === 'outbound-dial-action') {
      this.bySid.get(params.CallSid ?? '')?.onDialAction(params);
      return send(res, hangupTwiml()); // the bot leg is over: so is the call
    }
    res.writeHead(204).end();
    if (kind === 'outbound-bot-status') {
      if (params.CallStatus === 'in-progress' || params.CallStatus === 'answered') this.bySid.get(params.ParentCallSid ?? '')?.onBotAnswered(params.CallSid ?? '');
      return;
    }
    const sid = params.CallSid ?? '';
    const call = this.bySid.get(sid);
    if (call) return call.onStatus(params);
    // Before the create's answer, or after the call was let go: kept a little while for the first case.
    if (this.early.size >= EARLY_KEPT) this.early.delete(this.early.keys().next().value!);
    this.early.set(sid, [...(this.early.get(sid) ?? []), params]);
    setTimeout(() => this.early.delete(sid), 60_000).unref();
  }

  /** Ends every call the product still follows: ringing ones are canceled (their dial fails at once), answered ones completed. */
  async hangupAll(): Promise<void> {
    for (const id of [...this.dials.keys()]) this.settleDial(id, { kind: 'failed', reason: 'error', detail: 'the product is stopping' });
    await Promise.allSettled([...this.calls.values()].map((call) => call.hangUp()));
  }

  /** Three reads' worth (at least 2 s): the bot's hang-up is seen before Twilio ends the call. */
  private get pauseAfterBotS(): number {
    return Math.max(2, Math.ceil((3 * this.cfg.poll_interval_ms) / 1000));
  }

  get liveCalls(): number {
    return this.calls.size;
  }

  private settleDial(id: string, result: DialResult): void {
    const settle = this.dials.get(id);
    this.dials.delete(id);
    settle?.(result);
  }
}
