/**
 * One outbound call placed through Twilio's Calls API, as the call flow sees any answered call.
 * Twilio runs the call by itself from the inline TwiML given at creation (dial the bot, then hang
 * up); the product follows it by reading the call and its <Dial> leg from the API every
 * poll interval, and ends it with an update (canceled while it rings, completed once answered).
 * With callbacks (the daemon's public_url, outbound_status), Twilio tells instead: the call's status
 * callback, the <Sip> status (the bot answered) and the <Dial> action (how the bot leg ended, and
 * whether the subscriber was still there); the API is then read only every 30 poll intervals (30 s by
 * default), in case one is lost.
 */
import type { AnsweredCall, BotLegEnd, ConnectResult, DialResult } from '../../core/types.js';
import type { Logger } from '../../log.js';
import type { SipTarget } from '../../twin/sip.js';
import type { CallResource, CallsApi, TwilioCallStatus } from './calls-api.js';

const FINAL: ReadonlySet<TwilioCallStatus> = new Set(['completed', 'busy', 'failed', 'no-answer', 'canceled']);
/** Failed reads in a row before the call counts as lost (Twilio's API down, or the network). */
const MAX_READ_FAILURES = 10;
/** How long past its own timeout Twilio may take to report a ring or a bot leg's end. */
const REPORT_MARGIN_MS = 15_000;
/** With callbacks, the call is read anyway this many poll intervals apart (at least 1 s): in case one is lost. */
const SAFETY_READ_INTERVALS = 30;
const STATUSES: ReadonlySet<string> = new Set(['queued', 'ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled']);

export interface OutboundCallSetup {
  /** Our id for the call (the warm-up's callId), not Twilio's CallSid. */
  id: string;
  to: string;
  from: string;
  /** The bot leg written into the call's TwiML. */
  target: SipTarget;
  ringTimeoutS: number;
  answerTimeoutS: number;
}

export interface OutboundCallDeps {
  api: CallsApi;
  log: Logger;
  pollIntervalMs: number;
  /** Twilio calls back (status, <Dial> action, <Sip> status): reads are only a safety net. */
  callbacks?: boolean;
  /** Told once, when the call is over at Twilio and the product is done with it. */
  done: (call: TwilioOutboundCall) => void;
}

export class TwilioOutboundCall implements AnsweredCall {
  readonly pbx = 'twilio' as const;
  readonly direction = 'outbound' as const;
  readonly hints: Readonly<Record<string, string>> = {};
  readonly id: string;
  readonly caller: string;
  readonly callerName = '';
  readonly dialed: string;
  private readonly gone = new AbortController();
  readonly ended = this.gone.signal;
  private status: TwilioCallStatus = 'queued';
  private endTime?: number;
  /** The <Dial><Sip> leg, once Twilio lists it. */
  private botLeg?: CallResource;
  private lost?: string;
  /** From the <Dial> action: who was there when the bot leg ended (callbacks only). */
  private botLegEndedBy?: BotLegEnd;
  /** The <Dial> action was answered <Hangup/>: Twilio ends the call by itself. */
  private endingByTwiml = false;
  private readonly waiters = new Set<() => void>();
  private readonly stopPolling = new AbortController();

  constructor(readonly sid: string, private readonly setup: OutboundCallSetup, private readonly deps: OutboundCallDeps) {
    this.id = setup.id;
    this.caller = setup.from;
    this.dialed = setup.to;
    void this.poll();
  }

  /** The subscriber's answer or the dial's failure, as a PBX's originate reports it. */
  async rung(): Promise<DialResult> {
    const deadline = Date.now() + this.setup.ringTimeoutS * 1000 + REPORT_MARGIN_MS;
    this.wakeAt(deadline);
    const status = await this.until(() => (this.status === 'queued' || this.status === 'ringing') && Date.now() < deadline ? undefined : this.status);
    if (this.lost) return { kind: 'failed', reason: 'error', detail: this.lost };
    switch (status) {
      case 'in-progress': case 'completed': return { kind: 'answered', call: this };
      case 'busy': return { kind: 'failed', reason: 'busy', detail: 'Twilio call status busy' };
      case 'no-answer': return { kind: 'failed', reason: 'no-answer', detail: 'Twilio call status no-answer' };
      case 'failed': return { kind: 'failed', reason: 'unavailable', detail: 'Twilio call status failed' };
      case 'canceled': return { kind: 'failed', reason: 'error', detail: 'Twilio call status canceled' };
      default:
        await this.hangUp();
        return { kind: 'failed', reason: 'no-answer', detail: `Twilio still reported the call ${status} after the ring time` };
    }
  }

  async hold(): Promise<void> {}

  /**
   * Twilio dials the bot by itself when the subscriber answers: this waits for that leg. The leg
   * carries the session id of the warm-up before the dial; a session renewed since cannot reach it.
   */
  async connect(target: SipTarget): Promise<ConnectResult> {
    if (target.twinId !== this.setup.target.twinId) {
      return { kind: 'failed', reason: 'error', pbxReason: 'the session was renewed after Twilio had dialled the bot with the earlier one' };
    }
    const deadline = Date.now() + this.setup.answerTimeoutS * 1000 + REPORT_MARGIN_MS;
    this.wakeAt(deadline);
    const leg = await this.until(() => {
      const status = this.botLeg?.status;
      if (status !== undefined && status !== 'queued' && status !== 'ringing') return status;
      if (FINAL.has(this.status) || this.lost) return 'caller-gone' as const;
      return Date.now() < deadline ? undefined : ('timeout' as const);
    });
    switch (leg) {
      case 'in-progress': case 'completed': return { kind: 'answered', ended: this.botLegEnded() };
      case 'busy': return { kind: 'failed', reason: 'busy', pbxReason: 'Twilio bot leg busy' };
      case 'no-answer': return { kind: 'failed', reason: 'no-answer', pbxReason: 'Twilio bot leg no-answer' };
      case 'caller-gone': return this.lost ? { kind: 'failed', reason: 'error', pbxReason: this.lost } : { kind: 'caller-gone' };
      case 'timeout': return { kind: 'failed', reason: 'error', pbxReason: 'Twilio did not report the bot leg in time' };
      default: return { kind: 'failed', reason: 'error', pbxReason: `Twilio bot leg ${leg}` };
    }
  }

  async setStatus(): Promise<void> {
    // Twilio has no channel variables: the outcome line and metrics carry the status.
  }

  /** An outbound subscriber has no dialplan to go on in: whatever the route says, the call ends. */
  async leave(): Promise<void> {
    await this.hangUp();
  }

  async release(): Promise<void> {
    await this.hangUp();
    this.finish();
  }

  /** Ends the call at Twilio if it is not over: canceled while it rings, completed once answered. */
  async hangUp(): Promise<void> {
    if (FINAL.has(this.status) || this.lost || this.endingByTwiml) return;
    const status = this.status === 'in-progress' ? 'completed' : 'canceled';
    try {
      this.observe(await this.deps.api.update(this.sid, status));
    } catch (err) {
      this.deps.log.warn({ callId: this.id, twilioCallSid: this.sid, reason: (err as Error).message }, `could not end the Twilio call (${status})`);
    }
  }

  /**
   * Who hung up first, read from the order Twilio's resources show it: the bot leg over while the
   * subscriber's call is not → the bot; the other way round → the subscriber. Both over at the same
   * read: the earlier end_time (1 s resolution; a tie counts as the subscriber).
   */
  private async botLegEnded(): Promise<BotLegEnd> {
    return this.until(() => {
      if (this.botLegEndedBy !== undefined) return this.botLegEndedBy;
      const legOver = this.botLeg !== undefined && FINAL.has(this.botLeg.status);
      const callOver = FINAL.has(this.status) || this.lost !== undefined;
      if (!legOver && !callOver) return undefined;
      if (legOver && !callOver) return 'bot';
      if (!legOver) return 'caller';
      const legEnd = Date.parse(this.botLeg!.end_time ?? '');
      return legEnd < (this.endTime ?? Number.NaN) ? 'bot' : 'caller';
    });
  }

  /** Resolves with the first value `check` gives, checked now and after every read of the call. */
  private until<T>(check: () => T | undefined): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const wake = () => {
        const value = check();
        if (value === undefined) return;
        this.waiters.delete(wake);
        resolve(value);
      };
      this.waiters.add(wake);
    });
  }

  // ---- callbacks (outbound_status: callbacks) ----

  /** The call's status callback (ringing, answered, completed, busy, …). */
  onStatus(params: Record<string, string>): void {
    const status = params.CallStatus ?? '';
    if (!STATUSES.has(status) || FINAL.has(this.status)) return;
    this.status = status as TwilioCallStatus;
    if (FINAL.has(this.status)) this.endTime ??= Date.now();
    this.news();
  }

  /** The <Sip> status callback: the bot answered its leg. */
  onBotAnswered(legSid: string): void {
    if (this.botLeg !== undefined && FINAL.has(this.botLeg.status)) return;
    this.botLeg = { sid: legSid, status: 'in-progress', parent_call_sid: this.sid, end_time: null };
    this.news();
  }

  /**
   * The <Dial> action: the bot leg is over (DialCallStatus), and CallStatus says whether the
   * subscriber was still there: still in progress → the bot ended first, and the answer <Hangup/>
   * ends the call; completed → the subscriber hung up first (Twilio does not run the answer).
   */
  onDialAction(params: Record<string, string>): void {
    const dialStatus = params.DialCallStatus === 'answered' ? 'completed' : params.DialCallStatus ?? 'failed';
    const legStatus = (STATUSES.has(dialStatus) ? dialStatus : 'failed') as TwilioCallStatus;
    const subscriberGone = FINAL.has((params.CallStatus ?? '') as TwilioCallStatus);
    this.botLeg = { sid: params.DialCallSid ?? this.botLeg?.sid ?? '', status: legStatus, parent_call_sid: this.sid, end_time: new Date().toUTCString() };
    if (legStatus === 'completed') this.botLegEndedBy = subscriberGone ? 'caller' : 'bot';
    if (subscriberGone && !FINAL.has(this.status)) {
      this.status = 'completed';
      this.endTime ??= Date.now();
    }
    this.endingByTwiml = !subscriberGone;
    this.news();
  }

  /** After news from Twilio (a read or a callback): the call's end, the waits, and whether there is more to learn. */
  private news(): void {
    if (FINAL.has(this.status) || this.lost) this.gone.abort(new Error(this.lost ?? `Twilio reported the call ${this.status}`));
    for (const wake of [...this.waiters]) wake();
    // Over at Twilio and read with its bot leg: nothing more to learn.
    if ((FINAL.has(this.status) && (this.botLeg === undefined || FINAL.has(this.botLeg.status))) || this.lost) this.finish();
  }

  /** Waits that depend on the clock alone (the ring bound) are checked once more then. */
  private wakeAt(deadline: number): void {
    const timer = setTimeout(() => { for (const wake of [...this.waiters]) wake(); }, Math.max(0, deadline - Date.now()) + 1);
    timer.unref();
    this.stopPolling.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  }

  /** Reads the call (and its bot leg once answered) until it is over or the product lets it go. */
  private async poll(): Promise<void> {
    let failures = 0;
    const intervalMs = this.deps.callbacks ? Math.max(1000, SAFETY_READ_INTERVALS * this.deps.pollIntervalMs) : this.deps.pollIntervalMs;
    while (!this.stopPolling.signal.aborted) {
      await sleep(intervalMs, this.stopPolling.signal);
      if (this.stopPolling.signal.aborted) break;
      try {
        // The bot leg before the call: a leg seen over while the call read *after* it is still up was
        // ended by the bot. (Read the other way round, a subscriber hanging up between the two reads
        // looked like the bot hanging up first.)
        const legsFirst = this.status !== 'queued' && this.status !== 'ringing';
        if (legsFirst) this.botLeg = (await this.deps.api.children(this.sid))[0] ?? this.botLeg;
        this.observe(await this.deps.api.fetch(this.sid));
        // A safety read (callbacks lost) may find the call answered, or over, at once: its legs too.
        if (this.deps.callbacks && !legsFirst && this.status !== 'queued' && this.status !== 'ringing') {
          this.botLeg = (await this.deps.api.children(this.sid))[0] ?? this.botLeg;
        }
        failures = 0;
      } catch (err) {
        failures += 1;
        this.deps.log.warn({ callId: this.id, twilioCallSid: this.sid, failures, reason: (err as Error).message }, 'could not read the Twilio call');
        if (failures >= MAX_READ_FAILURES) this.lost = `lost track of the call at Twilio: ${(err as Error).message}`;
      }
      this.news();
    }
    // Timers of waits that depend on the clock alone (the ring bound) are checked once more.
    for (const wake of [...this.waiters]) wake();
  }

  private observe(call: CallResource): void {
    this.status = call.status;
    if (call.end_time) this.endTime = Date.parse(call.end_time);
  }

  private finish(): void {
    if (this.stopPolling.signal.aborted) return;
    this.stopPolling.abort();
    this.deps.done(this);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
