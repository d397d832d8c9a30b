import { randomBytes } from 'node:crypto';
import type { SipTarget } from '../../twin/sip.js';
import type { AnsweredCall, BotFailure, BotLegEnd, ConnectOptions, ConnectResult, EndedBy, HoldKind } from '../../core/types.js';
import { allowedTransfer } from '../../core/route.js';
import { ignoreGone, StasisCaller, type StasisCallerHost } from './stasis-caller.js';
import { CALLER_GONE } from '../shared.js';

/** The driver's side of a call: it feeds events in and tracks the ids of the call's other legs. */
export interface AriCallHost extends StasisCallerHost {
  /** Who acts on a bot's REFER, as found at connect (see asterisk.transfer_handling). */
  readonly transferHandling: 'ari' | 'core';
  registerBotLeg(botId: string, call: AriCall): void;
  registerTransferLeg(legId: string, call: AriCall): void;
  forget(call: { readonly id: string; readonly botLegId: string | undefined; readonly transferLegIds?: readonly string[] }): void;
}

/**
 * The caller's way to a person the bot named in a REFER. `dialing`: our Local/<ext>@<context> leg
 * rings (ari handling) or Asterisk's own Local channel does (core); `connected`: the person
 * answered and is in the caller's bridge.
 */
type TransferLeg =
  | { state: 'none' }
  | { state: 'dialing'; id: string; target: string; timer: NodeJS.Timeout; ours: boolean }
  | { state: 'connected'; id: string; target: string }
  | { state: 'gone'; id: string };

type BotLeg =
  | { state: 'none' }
  | { state: 'dialing'; id: string; settle: (r: ConnectResult) => void; timer: NodeJS.Timeout }
  | { state: 'answered'; id: string }
  /** Failed or abandoned: the leg may still exist in Asterisk until release() hangs it up. */
  | { state: 'ending'; id: string }
  | { state: 'gone'; id: string };

/**
 * Tells this run's bot legs from an earlier run's. A caller picked up after a restart gets a new leg
 * while the earlier run's leg for it may still be in the app: with the same id Asterisk refuses the
 * new one (409), and once the old one is being hung up its end would read as the new leg's failure
 * (which closes the trunk to Twin).
 */
const RUN_TAG = randomBytes(3).toString('hex');

/**
 * One caller in our Stasis app. Plan (4 ARI requests up to the bot's dial): ring the caller and
 * create the bridge while the warm-up runs; create the bot leg with the Twin headers as
 * PJSIP_HEADER variables (the way the recordings prove reaches the INVITE) and dial it; when the
 * bot answers, put both legs in the bridge and stop the ringback.
 */
export class AriCall extends StasisCaller<AriCallHost> implements AnsweredCall {
  private readonly bridgeId: string;
  private bridge?: Promise<void>;
  private bridgeMade = false;
  private bot: BotLeg = { state: 'none' };
  private resolveEnd?: (end: BotLegEnd) => void;
  private botEnteredStasis?: () => void;
  private options?: ConnectOptions;
  private transfer: TransferLeg = { state: 'none' };
  private readonly transferLegs: string[] = [];
  /** Music plays to the bridge while a transfer rings after the bot left. */
  private transferMoh = false;
  /** After a transfer: who ends the caller's talk with the person. */
  private resolveTargetEnd?: (who: EndedBy) => void;

  constructor(
    host: AriCallHost, id: string, caller: string, callerName: string, dialed: string,
    hints: Readonly<Record<string, string>>, direction: 'inbound' | 'outbound' = 'inbound',
  ) {
    super(host, id, caller, callerName, dialed, hints, direction);
    this.bridgeId = `twin-${id}`;
  }

  get botLegId(): string | undefined {
    return this.bot.state === 'none' ? undefined : this.bot.id;
  }

  /** Every leg a transfer of this call used (a bot may try again after a failed one). */
  get transferLegIds(): readonly string[] {
    return this.transferLegs;
  }

  override async hold(kind: HoldKind): Promise<void> {
    this.ensureBridge().catch(() => { /* retried in connect() */ });
    await super.hold(kind);
  }

  async connect(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult> {
    this.options = options;
    await this.ensureBridge();
    if (this.ended.aborted) return { kind: 'caller-gone' };
    const botId = `${this.bridgeId}-bot-${RUN_TAG}`;
    const result = new Promise<ConnectResult>((settle) => {
      // Our own bound on top of Asterisk's dial timeout, in case its events are lost.
      const timer = setTimeout(() => this.botFailed('no-answer'), (answerTimeoutS + 5) * 1000);
      this.bot = { state: 'dialing', id: botId, settle, timer };
    });
    const inStasis = new Promise<void>((resolve) => { this.botEnteredStasis = resolve; });
    this.host.registerBotLeg(botId, this);
    try {
      await this.host.rest.createChannel({
        channelId: botId,
        endpoint: this.host.cfg.bot_endpoint.replace('{uri}', target.uri),
        appArgs: `bot,${this.id}`,
        originator: this.id,
        variables: {
          ...headerVariables(target.headers),
          // The INVITE's From is the leg's connected line: ours, cleaned, not the stranger's raw one.
          'CONNECTEDLINE(num,i)': target.callerId.number, 'CONNECTEDLINE(name,i)': target.callerId.name,
          ...this.referHandling(),
        },
      });
      // Asterisk answers the create before the channel is in our app; a dial sent in between is
      // refused with 409 (recording create-dial-race: 4-8 % of calls). Dial on its StasisStart.
      if (!(await this.botReady(inStasis, result))) return await result;
      // No caller= here: it would put the caller's raw id over our cleaned connected line.
      await this.host.rest.dial(botId, undefined, answerTimeoutS);
    } catch (err) {
      this.host.log.warn({ callId: this.id, err: (err as Error).message }, 'bot leg could not be dialled');
      this.botFailed('error');
    }
    return result;
  }

  /**
   * Who acts on the bot's REFER. ari: the REFER comes to us as ChannelTransfer (only the written
   * value of the function counts); core: Asterisk transfers within transfer_context, which lists
   * only allowed targets, never the bot endpoint's own context (toll fraud).
   */
  private referHandling(): Record<string, string> {
    // TRANSFER_CONTEXT in both: should ari-only not take (a wrong version guess), Asterisk's own
    // transfer still looks only in transfer_context.
    const context = { TRANSFER_CONTEXT: this.host.cfg.transfer_context };
    return this.host.transferHandling === 'ari' ? { ...context, 'PJSIP_TRANSFER_HANDLING()': 'ari-only' } : context;
  }

  /** Waits for the created bot leg's StasisStart; false when the call or the leg ended first. */
  private async botReady(inStasis: Promise<void>, result: Promise<ConnectResult>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), this.host.cfg.request_timeout_ms); });
    const first = await Promise.race([inStasis.then(() => 'in' as const), result.then(() => 'settled' as const), timeout]);
    clearTimeout(timer);
    if (first === 'timeout') throw new Error(`the bot leg did not enter Stasis within ${this.host.cfg.request_timeout_ms} ms`);
    return first === 'in' && this.bot.state === 'dialing' && !this.ended.aborted;
  }

  async release(): Promise<void> {
    if (this.bot.state === 'dialing') clearTimeout(this.bot.timer);
    const tasks: Promise<unknown>[] = [];
    if (this.bot.state === 'dialing' || this.bot.state === 'answered' || this.bot.state === 'ending') {
      tasks.push(this.host.rest.hangup(this.bot.id).catch(ignoreGone));
      this.bot = { state: 'gone', id: this.bot.id };
    }
    if (this.transfer.state === 'dialing' || this.transfer.state === 'connected') {
      if (this.transfer.state === 'dialing') clearTimeout(this.transfer.timer);
      tasks.push(this.host.rest.hangup(this.transfer.id).catch(ignoreGone));
      this.transfer = { state: 'gone', id: this.transfer.id };
    }
    if (this.bridge) {
      tasks.push(this.bridge.then(() => this.bridgeMade && this.host.rest.destroyBridge(this.bridgeId)).catch(ignoreGone));
    }
    try {
      await Promise.all(tasks);
    } finally {
      this.host.forget(this); // even when ARI is gone (stopping): the call has left the product
    }
  }

  // ---- events fed by the driver ----

  /** The caller left Stasis (hung up, or we sent it on). */
  onCallerLeft(): void {
    if (this.ended.aborted) return;
    this.abort.abort(CALLER_GONE);
    if (this.bot.state === 'dialing') {
      clearTimeout(this.bot.timer);
      this.bot.settle({ kind: 'caller-gone' });
      this.bot = { state: 'ending', id: this.bot.id };
    }
    this.resolveEnd?.('caller');
    this.resolveTargetEnd?.('caller');
  }

  /** The bot leg's StasisStart: from now on Asterisk accepts its dial. */
  onBotInStasis(): void {
    this.botEnteredStasis?.();
  }

  onBotAnswered(): void {
    if (this.bot.state !== 'dialing') return;
    const { id, settle, timer } = this.bot;
    clearTimeout(timer);
    this.bot = { state: 'answered', id };
    const ended = new Promise<BotLegEnd>((resolve) => { this.resolveEnd = resolve; });
    // A caller whose phone was left ringing (the shipped Ringing()) is answered now, with the bot.
    const answered = this.answeredByPbx ? undefined : this.host.rest.answer(this.id);
    Promise.all([answered, this.host.rest.addToBridge(this.bridgeId, [this.id, id]), this.stopHold()])
      .then(() => settle(this.ended.aborted ? { kind: 'caller-gone' } : { kind: 'answered', ended }))
      .catch((err: Error) => {
        this.host.log.warn({ callId: this.id, err: err.message }, 'could not bridge the bot leg');
        settle(this.ended.aborted ? { kind: 'caller-gone' } : { kind: 'failed', reason: 'error' });
      });
  }

  /** An answered bot leg that leaves Stasis has hung up; a ringing one waits for ChannelDestroyed's cause. */
  onBotLeftStasis(): void {
    if (this.bot.state === 'answered') this.onBotGone();
  }

  /** The bot leg is gone (ChannelDestroyed, or missing after a reconnect). */
  onBotGone(cause?: number, techCause?: number): void {
    if (this.bot.state === 'dialing') {
      this.botFailed(failureFromCause(cause, techCause), techCause, cause);
    } else if (this.bot.state === 'answered') {
      this.bot = { state: 'gone', id: this.bot.id };
      // A bot that hangs up after its REFER: the caller waits for the person (or their fallback),
      // with music rather than silence.
      if (this.transfer.state !== 'dialing') this.resolveEnd?.('bot');
      else this.playWhileTransferring();
    } else if (this.bot.state === 'ending') {
      this.bot = { state: 'gone', id: this.bot.id };
    }
  }

  // ---- transfer to a person (the bot's REFER) ----

  /**
   * ari handling: the bot asks to send the caller to `name`. Refused (not in the route's
   * transfers, or one is under way): NOTIFY 603 and the call with the bot goes on. Allowed: the
   * bot hears 100 and stays with the caller while we ring the destination.
   */
  onTransferRequest(name: string): void {
    if (this.bot.state !== 'answered') return;
    const botId = this.bot.id;
    const to = this.transfer.state === 'none' ? allowedTransfer(this.options?.transfers ?? {}, name) : undefined;
    if (!to) {
      this.host.log.warn({ callId: this.id, transferTarget: name.slice(0, 80) }, 'the bot asked for a transfer the route does not allow; refused');
      void this.host.rest.transferProgress(botId, 'channel_declined').catch(ignoreGone).catch(this.warn('could not decline the transfer'));
      return;
    }
    const id = `${this.bridgeId}-xfer${this.transferLegs.length + 1}`;
    const timeoutS = this.options!.transferTimeoutS;
    const timer = setTimeout(() => this.onTransferLegGone(undefined, 'no answer in time'), (timeoutS + 5) * 1000);
    this.transfer = { state: 'dialing', id, target: name, timer, ours: true };
    this.registerTransferLeg(id);
    void this.host.rest.transferProgress(botId, 'channel_progress').catch(ignoreGone).catch(this.warn('could not report the transfer to the bot'));
    // /n: no Local optimisation, so the leg we follow stays the one in our bridge.
    this.host.rest.createChannel({ channelId: id, endpoint: `Local/${to.extension}@${to.context}/n`, appArgs: `transfer,${this.id}`, variables: {} })
      .catch((err: Error) => this.onTransferLegGone(id, `could not reach ${to.extension}@${to.context}: ${err.message}`));
  }

  /** Our Local leg to the destination is in the app: ring it (Asterisk refuses a dial before this). */
  onTransferLegInStasis(legId: string): void {
    const leg = this.transfer;
    if (leg.state !== 'dialing' || !leg.ours || leg.id !== legId) {
      // A leg whose try was given up (its create answered late): nobody will ring or free it.
      void this.host.rest.hangup(legId).catch(() => {});
      return;
    }
    this.host.rest.dial(leg.id, this.id, this.options!.transferTimeoutS)
      .catch((err: Error) => this.onTransferLegGone(legId, `could not dial the destination: ${err.message}`));
  }

  /**
   * core handling: Asterisk's blind transfer put a Local channel into our bridge in the bot's place
   * (StasisStart with replace_channel). It is never a new call. The bot stays up in our app
   * without a bridge: hung up here. A target the route does not allow is hung up too.
   */
  onReplacedByTransfer(legId: string, exten: string): void {
    const name = exten.slice(0, 80);
    this.registerTransferLeg(legId);
    if (this.bot.state === 'answered') {
      void this.host.rest.hangup(this.bot.id).catch(ignoreGone).catch(this.warn('could not hang up the bot leg'));
      this.bot = { state: 'ending', id: this.bot.id };
    }
    if (!allowedTransfer(this.options?.transfers ?? {}, name)) {
      this.host.log.warn({ callId: this.id, transferTarget: name.slice(0, 80) }, 'Asterisk transferred the caller to a target the route does not allow; hanging it up');
      this.transfer = { state: 'gone', id: legId };
      void this.host.rest.hangup(legId).catch(ignoreGone).catch(this.warn('could not hang up the transfer leg'));
      this.resolveEnd?.({ kind: 'transfer-failed', target: name, reason: 'transfer target not allowed', callerSentOn: false });
      return;
    }
    const timer = setTimeout(() => this.onTransferLegGone(undefined, 'no answer in time'), ((this.options?.transferTimeoutS ?? 30) + 5) * 1000);
    this.transfer = { state: 'dialing', id: legId, target: name, timer, ours: false };
  }

  /**
   * Asterisk swapped another channel into our bridge in place of the transfer leg (a Local pair
   * optimised away): follow the new one, so its end is the person's end.
   */
  onTransferLegReplaced(oldId: string, newId: string): void {
    const leg = this.transfer;
    if ((leg.state !== 'dialing' && leg.state !== 'connected') || leg.id !== oldId) return;
    this.registerTransferLeg(newId);
    this.transfer = { ...leg, id: newId };
  }

  /** The destination answered: the caller talks to the person; the bot hears 200 and is let go. */
  onTransferLegAnswered(legId: string): void {
    const leg = this.transfer;
    if (leg.state !== 'dialing' || leg.id !== legId) return;
    clearTimeout(leg.timer);
    this.transfer = { state: 'connected', id: leg.id, target: leg.target };
    const ended = new Promise<EndedBy>((resolve) => { this.resolveTargetEnd = resolve; });
    const tasks: Promise<unknown>[] = [
      this.host.rest.setVar(this.id, 'TWIN_TRANSFER_TARGET', leg.target),
      this.setStatus('TRANSFERRED'),
    ];
    if (leg.ours) tasks.push(this.host.rest.addToBridge(this.bridgeId, [leg.id]).then(() => Promise.all([this.letBotGo(), this.stopTransferMoh()])));
    Promise.all(tasks).catch(this.warn('could not finish the transfer'));
    this.resolveEnd?.({ kind: 'transferred', target: leg.target, ended });
  }

  /**
   * The destination's leg is gone (`legId`; none: the current one, e.g. at our own timeout): before
   * the answer the transfer failed; after it, the person hung up. A late end of an earlier try's leg changes nothing.
   */
  onTransferLegGone(legId?: string, why = 'the destination did not answer'): void {
    const leg = this.transfer;
    if (leg.state === 'none' || (legId !== undefined && leg.id !== legId)) return;
    if (leg.state === 'connected') {
      this.transfer = { state: 'gone', id: leg.id };
      this.resolveTargetEnd?.('target');
      return;
    }
    if (leg.state !== 'dialing') return;
    clearTimeout(leg.timer);
    void this.host.rest.hangup(leg.id).catch(() => {});
    this.transfer = leg.ours && this.bot.state === 'answered' ? { state: 'none' } : { state: 'gone', id: leg.id };
    this.host.log.warn({ callId: this.id, transferTarget: leg.target, reason: why }, 'transfer failed');
    if (leg.ours && this.bot.state === 'answered') {
      // The bot is still with the caller: it hears 503 and may go on or try again.
      void this.host.rest.transferProgress(this.bot.id, 'channel_unavailable').catch(ignoreGone).catch(this.warn('could not report the transfer to the bot'));
      return;
    }
    this.resolveEnd?.({ kind: 'transfer-failed', target: leg.target, reason: why, callerSentOn: false });
  }

  private playWhileTransferring(): void {
    this.transferMoh = true;
    this.host.rest.startBridgeMoh(this.bridgeId, this.host.cfg.moh_class).catch(this.warn('could not play music while the transfer rings'));
  }

  private stopTransferMoh(): Promise<unknown> {
    if (!this.transferMoh) return Promise.resolve();
    this.transferMoh = false;
    return this.host.rest.stopBridgeMoh(this.bridgeId).catch(ignoreGone);
  }

  /** NOTIFY 200 to the bot, then its leg leaves (as recorded: Asterisk itself does not BYE it). */
  private async letBotGo(): Promise<void> {
    if (this.bot.state !== 'answered') return;
    const botId = this.bot.id;
    this.bot = { state: 'ending', id: botId };
    await this.host.rest.transferProgress(botId, 'channel_answered').catch(ignoreGone);
    await this.host.rest.hangup(botId).catch(ignoreGone);
  }

  private registerTransferLeg(id: string): void {
    this.transferLegs.push(id);
    this.host.registerTransferLeg(id, this);
  }

  private warn(what: string): (err: Error) => void {
    return (err) => this.host.log.warn({ callId: this.id, err: err.message }, what);
  }

  private botFailed(reason: BotFailure, sipCode?: number, cause?: number): void {
    if (this.bot.state !== 'dialing') return;
    clearTimeout(this.bot.timer);
    const { id, settle } = this.bot;
    this.bot = { state: 'ending', id };
    settle({ kind: 'failed', reason, sipCode, cause });
  }

  private ensureBridge(): Promise<void> {
    if (!this.bridge) {
      this.bridge = this.host.rest.createBridge(this.bridgeId).then(() => { this.bridgeMade = true; });
      this.bridge.catch(() => { this.bridge = undefined; });
    }
    return this.bridge;
  }
}

/** Asterisk's ChannelDestroyed cause/tech_cause → what happened to the bot leg (see fixtures d1-d6). */
export function failureFromCause(cause?: number, techCause?: number): BotFailure {
  if (techCause === 486 || techCause === 600 || cause === 17) return 'busy';
  if ((techCause !== undefined && techCause >= 500) || cause === 34 || cause === 38 || cause === 41 || cause === 42) return 'unavailable';
  if (cause === 18 || cause === 19 || techCause === 408 || techCause === 480) return 'no-answer';
  return 'error';
}

function headerVariables(headers: Record<string, string>): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) vars[`PJSIP_HEADER(add,${name})`] = value;
  return vars;
}

