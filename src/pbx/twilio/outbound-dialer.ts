/**
 * Outbound calls over Twilio: one Calls API request creates the call with inline TwiML that dials
 * the bot with the warmed-up session's headers as soon as the subscriber answers. So the bot leg is
 * fixed before the phone rings, and the ring time is cut to what the session's lifetime has left.
 */
import type { Clock } from '../../clock.js';
import type { TwilioConfig } from '../../config/schema.js';
import type { DialRequest, DialResult, PbxDialer } from '../../core/types.js';
import type { Logger } from '../../log.js';
import { CallsApi } from './calls-api.js';
import { TwilioOutboundCall } from './outbound-call.js';
import { dialBotInline } from './twiml.js';

/** Kept between the subscriber's answer and the bot's INVITE (Twilio runs the TwiML, opens the leg). */
const ANSWER_TO_INVITE_S = 2;
/** Twilio's smallest useful ring time; below it the call is not placed. */
const MIN_RING_S = 5;

export class TwilioDialer implements PbxDialer {
  readonly pbx = 'twilio' as const;
  private readonly api: CallsApi;
  private readonly calls = new Map<string, TwilioOutboundCall>();
  /** Ringing calls' dials, settled at once when the product stops. */
  private readonly dials = new Map<string, (result: DialResult) => void>();

  constructor(private readonly cfg: TwilioConfig, private readonly log: Logger, private readonly clock: Clock) {
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
      sid = (await this.api.create({
        To: request.to, From: request.from, Timeout: String(ringTimeoutS), Twiml: dialBotInline(leg.target, leg.answerTimeoutS, this.pauseAfterBotS),
      })).sid;
    } catch (err) {
      return { kind: 'failed', reason: 'error', detail: `Twilio did not create the call: ${(err as Error).message}` };
    }
    this.log.info({ callId: request.id, twilioCallSid: sid, ringTimeoutS }, 'Twilio call created');
    const call = new TwilioOutboundCall(sid, { ...request, target: leg.target, ringTimeoutS, answerTimeoutS: leg.answerTimeoutS }, {
      api: this.api, log: this.log, pollIntervalMs: this.cfg.poll_interval_ms, done: (c) => this.calls.delete(c.id),
    });
    this.calls.set(request.id, call);
    return new Promise<DialResult>((settle) => {
      this.dials.set(request.id, settle);
      void call.rung().then((result) => {
        if (this.dials.has(request.id)) return this.settleDial(request.id, result);
        // Answered just as the product stopped: its dial already failed, so nobody else ends it.
        if (result.kind === 'answered') void result.call.release();
      });
    });
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
