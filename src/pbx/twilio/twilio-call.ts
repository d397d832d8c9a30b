/**
 * One call to a Twilio number, as the call flow sees any PBX's call. Twilio is driven by answers:
 * each of its requests (the incoming-call webhook, then the <Dial> action) waits for TwiML, and
 * whatever the flow decides next is written as the answer to the request waiting now.
 */
import type { ServerResponse } from 'node:http';
import type { TwilioRoute } from '../../core/route.js';
import type { AnsweredCall, BotFailure, BotLegEnd, ConnectOptions, ConnectResult, Fallback, TwinStatus } from '../../core/types.js';
import type { Logger } from '../../log.js';
import type { SipTarget } from '../../twin/sip.js';
import { actionTwiml, dialBot, hangupTwiml, refuseTransferTwiml, transferTwiml, type CallUrls } from './twiml.js';

/** What Twilio's webhook told us about the call (strangers' values, not yet cleaned). */
export interface TwilioCallInfo {
  callSid: string;
  from: string;
  to: string;
  callerName: string;
}

export interface TwilioCallContext {
  log: Logger;
  urls: (callSid: string) => CallUrls;
  /** The call's route in Twilio's terms, read from the config in force now. */
  route: (call: TwilioCall) => TwilioRoute;
  /** Told once, when the call has left the product. */
  released: (call: TwilioCall) => void;
}

/** The <Dial> action's parameters the product reads (Twilio's "Dial" page). */
export interface DialActionParams {
  /** The caller's own call: in-progress while the caller is still there, completed once gone. */
  CallStatus?: string;
  DialCallStatus?: string;
  DialCallDuration?: string;
  DialSipResponseCode?: string;
}

/** The referUrl request's parameter the product reads ("Inbound SIP REFER to Twilio"). */
export interface ReferParams {
  /** The Refer-To header of the bot's REFER, e.g. `<sip:operator@twilio.example>`. */
  ReferTransferTarget?: string;
}

/** How long a caller's hang-up waits for the <Dial> action that says whether the bot had answered. */
const DIAL_ACTION_GRACE_MS = 2000;

export const FINAL_CALL_STATUSES = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);

export class TwilioCall implements AnsweredCall {
  readonly pbx = 'twilio' as const;
  readonly direction = 'inbound' as const;
  readonly hints: Readonly<Record<string, string>> = {};
  readonly id: string;
  readonly caller: string;
  readonly callerName: string;
  readonly dialed: string;
  private readonly gone = new AbortController();
  readonly ended = this.gone.signal;
  /** The Twilio request waiting for our TwiML now, if any. */
  private waiting?: ServerResponse;
  private leg?: BotLeg;
  private released = false;
  /** The route's transfer bound, from connect(). */
  private transferTimeoutS = 30;
  /** The Refer-To name of an allowed transfer under way. */
  private transferTarget?: string;

  constructor(info: TwilioCallInfo, webhook: ServerResponse, private readonly ctx: TwilioCallContext) {
    this.id = info.callSid;
    this.caller = info.from;
    this.callerName = info.callerName;
    this.dialed = info.to;
    this.await(webhook);
  }

  /** Twilio rings the caller by itself while the webhook waits: nothing to play. */
  async hold(): Promise<void> {}

  /**
   * <Dial><Sip> to the bot. With transfers in the route's `twilio.transfers`, the <Dial> gets a
   * referUrl; without one Twilio refuses the bot's REFER itself (error 13802) and the caller stays.
   */
  async connect(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult> {
    const leg = (this.leg = new BotLeg());
    this.transferTimeoutS = options.transferTimeoutS;
    const urls = this.ctx.urls(this.id);
    const mayTransfer = Object.keys(this.ctx.route(this).transfers).length > 0;
    if (!this.answer(dialBot(target, answerTimeoutS, mayTransfer ? urls : { action: urls.action, botStatus: urls.botStatus }))) {
      return { kind: 'failed', reason: 'error', pbxReason: 'Twilio no longer waits for this call\'s TwiML' };
    }
    return leg.result;
  }

  async setStatus(): Promise<void> {
    // Twilio has no channel variables: the outcome line and metrics carry the status.
  }

  /**
   * The flow names a PBX fallback; a Twilio call takes the same route's Twilio action instead,
   * chosen by the status: after the bot (CONNECTED) its after_bot_hangup, otherwise its fallback.
   */
  async leave(_pbxAction: Fallback, status: TwinStatus): Promise<void> {
    const route = this.ctx.route(this);
    const action = status === 'CONNECTED' ? route.afterBotHangup : status === 'TRANSFERRED' ? { action: 'hangup' as const } : route.fallback;
    if (!this.answer(actionTwiml(action))) this.ctx.log.warn({ callId: this.id, status }, 'Twilio no longer waits for this call\'s TwiML: the fallback could not be sent');
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.answer(hangupTwiml());
    this.leg?.callerGone();
    this.ctx.released(this);
  }

  /** Twilio's status callback: the caller's call is over (hung up during the warm-up, or later). */
  callEnded(status: string): void {
    this.callerLeft(`Twilio reported the call ${status}`);
  }

  /** The <Sip> leg's status callback: the bot answered. */
  botAnswered(): void {
    this.leg?.answered();
  }

  /** The <Dial> action: how the bot leg ended. Its TwiML answer waits for the flow, unless the caller is gone. */
  dialEnded(params: DialActionParams, res: ServerResponse): void {
    const callerGone = params.CallStatus !== undefined && FINAL_CALL_STATUSES.has(params.CallStatus);
    if (callerGone || this.released) {
      send(res, hangupTwiml()); // Twilio does not act on TwiML for a call that is over
      if (callerGone) this.callerLeft('the caller hung up');
    } else {
      this.await(res);
    }
    this.leg?.dialEnded(params, callerGone);
  }

  /**
   * The bot's REFER (Twilio's referUrl request): a Refer-To name the route's `twilio.transfers`
   * lists → TwiML that dials its destination; anything else → refused, the caller stays with the bot.
   */
  referred(params: ReferParams, res: ServerResponse): void {
    // Only an answered bot can send a REFER: it proves the answer if the <Sip> status callback is late.
    if (!this.released && this.transferTarget === undefined) this.leg?.answered();
    const name = referToName(params.ReferTransferTarget ?? '');
    const transfers = this.ctx.route(this).transfers;
    const destination = name !== undefined && Object.hasOwn(transfers, name) ? transfers[name] : undefined;
    if (destination === undefined || name === undefined || this.transferTarget !== undefined || !this.leg?.isUp || this.released) {
      this.ctx.log.warn({ callId: this.id, referTo: name ?? '(unreadable)' }, 'bot\'s transfer refused: not in the route\'s twilio.transfers');
      return send(res, refuseTransferTwiml());
    }
    this.transferTarget = name;
    this.leg.transferring(name);
    this.ctx.log.info({ callId: this.id, transferTarget: name }, 'bot\'s transfer allowed: dialling its destination');
    send(res, transferTwiml(destination, this.transferTimeoutS, this.ctx.urls(this.id).transferAction));
  }

  /**
   * The <Dial> to the transfer's destination ended: answered (completed) → TRANSFERRED, with who
   * hung up first; busy / no answer / failed → TRANSFER_FAILED, and the route's fallback is the
   * answer to this request (unless the caller is gone).
   */
  transferEnded(params: DialActionParams, res: ServerResponse): void {
    const target = this.transferTarget;
    const callerGone = params.CallStatus !== undefined && FINAL_CALL_STATUSES.has(params.CallStatus);
    if (callerGone || this.released || target === undefined) send(res, hangupTwiml());
    else this.await(res);
    if (target === undefined) return;
    const status = params.DialCallStatus ?? 'failed';
    if (status === 'completed') this.leg?.transferred(target, callerGone ? 'caller' : 'target');
    else this.leg?.transferFailed(target, `transfer ${status}${params.DialSipResponseCode ? ` (SIP ${params.DialSipResponseCode})` : ''}`);
    if (callerGone) this.callerLeft('the caller hung up');
  }

  /**
   * The caller is gone. With a bot leg under way, Twilio still posts the <Dial> action, and only it
   * tells whether the bot had answered (its own status callback may not have arrived yet): it is
   * awaited a little before the leg counts as never answered.
   */
  private callerLeft(reason: string): void {
    if (!this.gone.signal.aborted) this.gone.abort(new Error(reason));
    this.leg?.callerGone(DIAL_ACTION_GRACE_MS);
  }

  /** Keeps a Twilio request for our next TwiML; Twilio giving up on it (its 15 s limit) counts as the call gone. */
  private await(res: ServerResponse): void {
    this.waiting = res;
    res.once('close', () => {
      if (this.waiting !== res) return;
      this.waiting = undefined;
      if (!res.writableEnded) this.callerLeft('Twilio stopped waiting for TwiML');
    });
  }

  /** Sends TwiML to the waiting request; false when none waits. */
  private answer(twiml: string): boolean {
    const res = this.waiting;
    this.waiting = undefined;
    if (!res || res.destroyed) return false;
    send(res, twiml);
    return true;
  }
}

/** The bot leg of one <Dial>: answered (then how it ended), failed, or the caller gone. */
class BotLeg {
  readonly result: Promise<ConnectResult>;
  private settle!: (result: ConnectResult) => void;
  private end!: (end: BotLegEnd) => void;
  private readonly ended = new Promise<BotLegEnd>((resolve) => {
    this.end = (end) => {
      if (this.isOver) return;
      this.isOver = true;
      resolve(end);
    };
  });
  private isAnswered = false;
  private isOver = false;
  private transferTarget?: string;
  private settled = false;
  private markBotLeft!: () => void;
  /** An allowed REFER: Twilio ends the bot's leg as it dials the person (the flow frees Twin's slot). */
  private readonly botLeft = new Promise<void>((resolve) => { this.markBotLeft = resolve; });

  constructor() {
    this.result = new Promise((resolve) => { this.settle = resolve; });
  }

  answered(answeredAgoMs?: number): void {
    if (this.isAnswered || this.settled) return;
    this.isAnswered = true;
    this.resolve({ kind: 'answered', ended: this.ended, botLeft: this.botLeft, ...(answeredAgoMs !== undefined ? { answeredAgoMs } : {}) });
  }

  dialEnded(params: DialActionParams, callerGone: boolean): void {
    if (this.transferTarget !== undefined) return; // the bot handed the caller on: the transfer's action decides
    const status = params.DialCallStatus ?? 'failed';
    if (status === 'completed') {
      // The <Sip> status callback may come late (or never): the action alone proves the answer.
      this.answered(Number(params.DialCallDuration ?? 0) * 1000);
      return this.end(callerGone ? 'caller' : 'bot');
    }
    if (this.isAnswered) return this.end(callerGone ? 'caller' : 'bot');
    if (callerGone || status === 'canceled') return this.resolve({ kind: 'caller-gone' });
    const sipCode = Number(params.DialSipResponseCode) || undefined;
    this.resolve({ kind: 'failed', reason: failure(status, sipCode), ...(sipCode ? { sipCode } : {}), pbxReason: `Twilio DialCallStatus ${status}` });
  }

  /** Answered and not yet over: a REFER can only come from a bot that is on the call. */
  get isUp(): boolean {
    return this.isAnswered && !this.isOver;
  }

  /** An allowed REFER: the bot leg is over at Twilio; how the caller's call to the person ends decides the rest. */
  transferring(target: string): void {
    this.transferTarget = target;
    this.markBotLeft();
  }

  transferred(target: string, endedBy: 'caller' | 'target'): void {
    this.finish({ kind: 'transferred', target, ended: Promise.resolve(endedBy) });
  }

  transferFailed(target: string, reason: string): void {
    this.finish({ kind: 'transfer-failed', target, reason, callerSentOn: false });
  }

  callerGone(graceMs = 0): void {
    // During a transfer only the transfer's <Dial> action says whether the person had answered.
    const target = this.transferTarget;
    if (target !== undefined) {
      setTimeout(() => this.transferred(target, 'caller'), graceMs).unref();
      return;
    }
    if (this.isAnswered) return this.end('caller');
    if (graceMs === 0) return this.resolve({ kind: 'caller-gone' });
    setTimeout(() => this.resolve({ kind: 'caller-gone' }), graceMs).unref();
  }

  /** Ends the leg with a transfer's end; before the answer there is no transfer to speak of. */
  private finish(end: BotLegEnd): void {
    if (this.isAnswered) this.end(end);
  }

  private resolve(result: ConnectResult): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(result);
  }
}

function failure(dialCallStatus: string, sipCode?: number): BotFailure {
  if (dialCallStatus === 'busy') return 'busy';
  if (dialCallStatus === 'no-answer') return 'no-answer';
  return sipCode !== undefined && (sipCode >= 500 || sipCode === 408) ? 'unavailable' : 'error';
}

/** The user part of a Refer-To (`<sip:operator@host;…?…>`, `sip:…`, `tel:…`) when it is a plain name, else undefined. */
export function referToName(referTo: string): string | undefined {
  const uri = referTo.trim().replace(/^<(.*)>$/s, '$1');
  const m = /^(?:sips?|tel):([^@;?>]*)/i.exec(uri);
  const name = m?.[1];
  return name !== undefined && /^[A-Za-z0-9_+*#.-]{1,64}$/.test(name) ? name : undefined;
}

export function send(res: ServerResponse, twiml: string): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'content-length': Buffer.byteLength(twiml) });
  res.end(twiml);
}
