import type { AsteriskConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { SipTarget } from '../../twin/sip.js';
import type { AnsweredCall, BotFailure, ConnectResult, HoldKind } from '../../core/types.js';
import type { AriRest } from './ari-rest.js';
import { ignoreGone, StasisCaller } from './stasis-caller.js';

/** The driver's side of a call: it feeds events in and tracks the bot leg's id. */
export interface AriCallHost {
  readonly rest: AriRest;
  readonly cfg: AsteriskConfig;
  readonly log: Logger;
  registerBotLeg(botId: string, call: AriCall): void;
  forget(call: { readonly id: string; readonly botLegId: string | undefined }): void;
}

type BotLeg =
  | { state: 'none' }
  | { state: 'dialing'; id: string; settle: (r: ConnectResult) => void; timer: NodeJS.Timeout }
  | { state: 'answered'; id: string }
  /** Failed or abandoned: the leg may still exist in Asterisk until release() hangs it up. */
  | { state: 'ending'; id: string }
  | { state: 'gone'; id: string };

/**
 * One caller in our Stasis app. Plan (4 ARI requests up to the bot's dial): ring the caller and
 * create the bridge while the warm-up runs; create the bot leg with the Twin headers as
 * PJSIP_HEADER variables (the way the recordings prove reaches the INVITE) and dial it; when the
 * bot answers, put both legs in the bridge and stop the ringback.
 */
export class AriCall extends StasisCaller implements AnsweredCall {
  private readonly bridgeId: string;
  private bridge?: Promise<void>;
  private bridgeMade = false;
  private bot: BotLeg = { state: 'none' };
  private resolveEnd?: (who: 'caller' | 'bot') => void;
  private botEnteredStasis?: () => void;

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

  override async hold(kind: HoldKind): Promise<void> {
    this.ensureBridge().catch(() => { /* retried in connect() */ });
    await super.hold(kind);
  }

  async connect(target: SipTarget, answerTimeoutS: number): Promise<ConnectResult> {
    await this.ensureBridge();
    if (this.ended.aborted) return { kind: 'caller-gone' };
    const botId = `${this.bridgeId}-bot`;
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
        variables: {
          ...headerVariables(target.headers),
          // The INVITE's From is the leg's connected line: ours, cleaned, not the stranger's raw one.
          'CONNECTEDLINE(num,i)': target.callerId.number, 'CONNECTEDLINE(name,i)': target.callerId.name,
        },
      });
      // Asterisk answers the create before the channel is in our app; a dial sent in between is
      // refused with 409 (recording create-dial-race: 4-8 % of calls). Dial on its StasisStart.
      if (!(await this.botReady(inStasis, result))) return await result;
      await this.host.rest.dial(botId, this.id, answerTimeoutS);
    } catch (err) {
      this.host.log.warn({ callId: this.id, err: (err as Error).message }, 'bot leg could not be dialled');
      this.botFailed('error');
    }
    return result;
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
    this.abort.abort();
    if (this.bot.state === 'dialing') {
      clearTimeout(this.bot.timer);
      this.bot.settle({ kind: 'caller-gone' });
      this.bot = { state: 'ending', id: this.bot.id };
    }
    this.resolveEnd?.('caller');
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
    const ended = new Promise<'caller' | 'bot'>((resolve) => { this.resolveEnd = resolve; });
    Promise.all([this.host.rest.addToBridge(this.bridgeId, [this.id, id]), this.stopHold()])
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
      this.resolveEnd?.('bot');
    } else if (this.bot.state === 'ending') {
      this.bot = { state: 'gone', id: this.bot.id };
    }
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

