import { randomUUID } from 'node:crypto';
import type { FreeswitchConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { SipTarget } from '../../twin/sip.js';
import { causeName } from '../../core/q850.js';
import { delayBetween } from '../../core/handover-delay.js';
import type {
  AnsweredCall, BotFailure, BotLegEnd, ConnectOptions, ConnectResult, EndedBy, Fallback, HoldKind, TwinStatus,
} from '../../core/types.js';
import type { CallSocket, EslEvent } from './esl.js';
import { CALLER_GONE } from '../shared.js';
import {
  endedByAfterTransfer, printableName, RELEASE_TRANSFER_GUARD, targetOf, TRANSFER_CONTEXT, transferredAway,
  transferVariables, verdictOfEventApp, type TransferVerdict,
} from './transfer.js';

type BotLeg =
  | { state: 'none' }
  /** appUuid: the bridge sent over the socket; none when the dialplan bridges (handed back). */
  | { state: 'dialing'; appUuid?: string; settle: (r: ConnectResult) => void; timer?: NodeJS.Timeout }
  | { state: 'answered'; appUuid?: string }
  /** The bot's REFER moved the caller into twin-transfers: the dialplan decides (its CUSTOM event tells). */
  | { state: 'transferring'; target: string }
  /** A person took the caller: FreeSWITCH has the call; we only wait to learn how it ends. */
  | { state: 'transferred'; target: string; settle: (who: EndedBy) => void }
  | { state: 'done' };

/** How long release() waits for FreeSWITCH's last events before closing the socket anyway. */
const FINAL_EVENTS_MS = 5000;

/**
 * One caller on FreeSWITCH's outbound socket.
 *
 * The shipped dialplan (`socket host:port full`, static; then `bridge ${twin_bot_dial}` and
 * `transfer ${twin_next_step} XML twin-after-socket`): nothing but `connect` during a quick warm-up;
 * once Twin has given an id the caller is *handed back*: one `multiset` (sent with its argument as a
 * body) of the bot's dial string (twin_bot_dial), twin_next_step=bot_failed, continue_on_fail, the
 * hook that marks the answer (TWIN_STATUS=CONNECTED, twin_next_step=released), the route's
 * after_bot_hangup and the transfer guard, and the socket is closed. `socket` returns at once and the dialplan's `bridge`
 * dials the bot: no 20 ms media tick waited for (issue 20; fixtures h1-h6). A warm-up slower than
 * hold_delay_ms gets a looping playback as ringback/MOH, which runs inline (`uuid_break` over the
 * inbound connection ends it; its variables, playback_timeout_sec included, go first). The driver
 * follows the call over its inbound connection: CHANNEL_BRIDGE = answered, twin::bot_failed =
 * failed (with originate_disposition and the SIP cause), twin::bot_hangup = the bot hung up first,
 * CHANNEL_HANGUP_COMPLETE = the end.
 *
 * Otherwise the socket stays with its call (an originated call's `&socket(… async full)`, a dialplan
 * from before issue 20 (`async full`, no bridge after `socket`), FreeSWITCH lacking twin-after-socket's
 * `bot_failed`, or the inbound connection down):
 * `bridge` is sent over the socket with the Twin headers as `sip_h_` variables and results come as
 * events: CHANNEL_BRIDGE = answered; EXECUTE_COMPLETE(bridge) without it = failed, read from
 * originate_disposition; after a bridge, EXECUTE_COMPLETE(bridge) with the caller still up = the bot
 * hung up first (fixtures a1, c1b, c4b). On a static socket the bridge runs inline and its events
 * arrive when it has ended (h7). Fallbacks use `api` commands, which act at once.
 */
export class FsCall implements AnsweredCall {
  readonly pbx = 'freeswitch' as const;
  readonly direction: 'inbound' | 'outbound';
  readonly id: string;
  readonly caller: string;
  readonly callerName: string;
  readonly dialed: string;
  readonly hints: Readonly<Record<string, string>>;
  readonly handoverDelayMs?: number;
  private readonly abort = new AbortController();
  readonly ended = this.abort.signal;
  /** The hold playback: its event-uuid, and whether FreeSWITCH has started it (only then can uuid_break stop it). */
  private hold_?: { appUuid: string; started: Promise<void>; markStarted: () => void; stopped: boolean };
  private holdTimer?: NodeJS.Timeout;
  /** playback_timeout_sec, in ms: how long a hold may last at most. */
  private holdBoundMs = 60_000;
  private bot: BotLeg = { state: 'none' };
  private resolveEnd?: (end: BotLegEnd) => void;
  /** transfer_history when the call reached us: a new bl_xfer entry means the caller was transferred. */
  private readonly transferHistory?: string;
  /** force_transfer_context is set on the caller: whoever sends the caller on must clear it. */
  private transferGuarded = false;
  /** CONNECTED_HOOK is set on the caller (an inline bridge): cleared when the caller leaves us. */
  private hooked = false;
  /** Told before the hold (prepareRoute), sent with the hold's own variables. */
  private earlyTransferVars?: string[];
  /** Resolves when FreeSWITCH is done with the channel on this socket (hung up or sent elsewhere). */
  private readonly finished: Promise<void>;
  private markFinished!: () => void;

  /** Where the caller goes if the bot hangs up first, once the call is handed to FreeSWITCH. */
  private afterBot?: Fallback;
  /**
   * The call is FreeSWITCH's and its socket closed: handed back before the bridge (the dialplan
   * bridges the bot) or handed over once bridged. The driver follows it over the inbound connection.
   */
  private released = false;
  /** Handed back: the shipped dialplan bridges the bot and runs every fallback after it. */
  private handedBack = false;
  /**
   * The shipped dialplan of issue 20: a static socket, then `bridge ${twin_bot_dial}` and the
   * transfer to twin-after-socket (it set twin_next_step=not_taken before `socket`).
   */
  private readonly dialplanBridges: boolean;
  /** Variables for the caller not sent yet: they go with the hold, or with the hand-back. */
  private pendingVars: string[] = [];

  constructor(
    private readonly socket: CallSocket, private readonly cfg: FreeswitchConfig, private readonly log: Logger,
    private readonly host: FollowHost = NO_FOLLOW_HOST,
  ) {
    const data = socket.takeChannelData();
    this.id = data.get('Unique-ID') ?? '';
    this.caller = data.get('Caller-Caller-ID-Number') ?? '';
    this.callerName = data.get('Caller-Caller-ID-Name') ?? '';
    this.dialed = data.get('Caller-Destination-Number') ?? '';
    this.direction = data.get('variable_twin_direction') === 'outbound' ? 'outbound' : 'inbound';
    this.hints = routeHints(data);
    this.handoverDelayMs = handoverDelay(data);
    this.transferHistory = data.get('variable_transfer_history');
    this.dialplanBridges = socket.mode === 'static' && data.get('variable_twin_next_step') === 'not_taken';
    this.finished = new Promise((resolve) => { this.markFinished = resolve; });
    socket.on('event', (event: EslEvent) => this.onEvent(event));
    socket.on('end', () => this.onSocketEnd());
  }

  /**
   * Variables by `api` (at once, not queued as an app): continue_on_fail, and playback_timeout_sec,
   * which ends the looping tone by itself: if the product vanishes, `socket` returns when it ends
   * and the dialplan's fallback runs (recording s10-sigkill: it never did). The tone itself starts
   * only if the warm-up takes longer than hold_delay_ms.
   */
  async hold(kind: HoldKind, boundMs = 60_000): Promise<void> {
    const boundS = Math.max(1, Math.ceil(boundMs / 1000));
    this.holdBoundMs = boundS * 1000;
    const transferVars = this.earlyTransferVars ?? [];
    this.earlyTransferVars = undefined;
    const vars = ['continue_on_fail=true', `playback_timeout_sec=${boundS}`, ...transferVars];
    if (this.dialplanBridges) {
      // Nothing needs them before the hold or the hand-back: one command fewer for a quick warm-up.
      this.pendingVars = vars;
    } else {
      await this.apiOk(`uuid_setvar_multi ${this.id} ${vars.join(';')}`);
      // Only once FreeSWITCH has them: a failed hold leaves connect() to send them before the bridge.
      if (transferVars.length > 0) this.transferGuarded = true;
    }
    if (kind === 'none' || this.ended.aborted) return;
    this.holdTimer = setTimeout(() => this.startHold(kind), this.cfg.hold_delay_ms);
  }

  /** The variables held back so far (hold(): the transfer guard among them), for the next command. */
  private takePendingVars(): string[] {
    const vars = this.pendingVars;
    this.pendingVars = [];
    if (vars.some((v) => v.startsWith('force_transfer_context='))) this.transferGuarded = true;
    return vars;
  }

  private startHold(kind: 'ring' | 'moh'): void {
    const inline = this.socket.mode === 'static';
    // Inline, the playback holds the socket until it ends: only uuid_break over the inbound
    // connection can end it early. Without that connection the caller waits in silence instead.
    if (inline && !this.host.canFollow()) {
      this.log.info({ callId: this.id }, 'no ringback during this warm-up: the inbound ESL connection that would stop it is down');
      return;
    }
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => { markStarted = resolve; });
    this.hold_ = { appUuid: randomUUID(), started, markStarted, stopped: false };
    const media = kind === 'ring' ? `tone_stream://${this.cfg.ringback};loops=-1` : this.cfg.moh_source;
    // playback_timeout_sec (its bound) before it: the socket serves one command after the other.
    const vars = this.takePendingVars();
    if (vars.length > 0) {
      this.apiOk(`uuid_setvar_multi ${this.id} ${vars.join(';')}`).catch((err: Error) =>
        this.log.warn({ callId: this.id, err: err.message }, 'could not set the hold\'s variables'));
    }
    // The static socket's own thread runs it as soon as it reads it: it has started.
    if (inline) markStarted();
    this.socket.execute('playback', media, this.hold_.appUuid, this.holdBoundMs + this.cfg.command_timeout_ms).catch((err: Error) => {
      if (!this.ended.aborted && !this.released) this.log.warn({ callId: this.id, err: err.message }, 'could not play the hold');
    });
  }

  /** The transfer variables ride on the hold's uuid_setvar_multi: one command fewer before the bot's dial. */
  prepareRoute(options: ConnectOptions): void {
    this.earlyTransferVars = this.transferVars(options);
  }


  async connect(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult> {
    if (this.ended.aborted) return { kind: 'caller-gone' };
    this.afterBot = options.afterBot;
    if (this.dialplanBridges && this.host.canFollow() && this.host.canHandBack()) return this.handBack(target, answerTimeoutS, options);
    return this.bridgeOverSocket(target, answerTimeoutS, options);
  }

  /**
   * The bot's leg, bridged by the shipped dialplan: one `multiset` (the dial string, the steps after
   * the bridge, the answer hook, what to do if the bot hangs up first, the transfer guard if not set
   * yet), then the socket is closed: FreeSWITCH runs it, reads the end of the socket, and `socket`
   * returns into `bridge ${twin_bot_dial}` at once (fixture h1). A hold still playing is broken over
   * the inbound connection; the command waits behind it (h5). multiset takes the values as they
   * are (no quotes dropped, unlike uuid_setvar_multi), split on a delimiter none of them holds.
   */
  private handBack(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult> {
    const result = new Promise<ConnectResult>((settle) => {
      // Our own bound on top of originate_timeout, in case FreeSWITCH's events are lost.
      const timer = setTimeout(() => this.botFailed('no-answer'), (answerTimeoutS + 5) * 1000);
      this.bot = { state: 'dialing', settle, timer };
    });
    const vars = [
      `twin_bot_dial=${dialString(this.cfg.bot_endpoint, target, answerTimeoutS)}`,
      'twin_next_step=bot_failed', ...ANSWER_HOOK, ...afterBotVariables(options.afterBot), ...this.takePendingVars(),
    ];
    if (!vars.includes('continue_on_fail=true')) vars.push('continue_on_fail=true');
    if (!this.transferGuarded) {
      vars.push(...this.transferVars(options));
      this.transferGuarded = true;
    }
    this.breakHoldOverInbound();
    this.handedBack = true;
    this.released = true;
    this.host.follow(this);
    this.socket.executeWithBody('multiset', multisetArgument(vars)).catch((err: Error) => void this.afterHandBackError(err.message));
    this.socket.close();
    return result;
  }

  /**
   * The multiset got no +OK: refused, or the socket closed first (a reset, a caller hanging up), in
   * which case FreeSWITCH may have run it all the same. twin_next_step says which: bot_failed or
   * released, and the hand-back took (its events follow); else the caller went to not_taken, or is gone.
   */
  private async afterHandBackError(reason: string): Promise<void> {
    const step = (await this.host.api(`uuid_getvar ${this.id} twin_next_step`).catch(() => '')).trim();
    if (step === 'bot_failed' || step === 'released') {
      this.log.info({ callId: this.id, reason }, 'the hand-back\'s answer was lost, but FreeSWITCH took it');
      return;
    }
    this.host.unfollow(this);
    if (!step.startsWith('-ERR')) return this.handBackRefused(reason);
    this.settleBot({ kind: 'caller-gone' }); // "No such channel": the caller hung up
    this.markFinished();
  }

  /** The variables did not reach the caller: `socket` returned into not_taken (people take the caller). */
  private handBackRefused(reason: string): void {
    if (this.bot.state !== 'dialing') return;
    this.log.warn({ callId: this.id, reason }, 'FreeSWITCH did not take the hand-back: the dialplan sends the caller to not_taken');
    this.settleBot({ kind: 'failed', reason: 'error', pbxReason: `hand-back refused: ${printableName(reason.slice(0, 60))}` });
    this.markFinished();
  }

  /** uuid_break where it acts at once: over the inbound connection for a static socket (its own thread plays the hold). */
  private breakHoldOverInbound(): void {
    clearTimeout(this.holdTimer);
    const hold = this.hold_;
    if (!hold || hold.stopped) return;
    hold.stopped = true;
    this.host.api(`uuid_break ${this.id} all`).catch((err: Error) =>
      this.log.warn({ callId: this.id, err: err.message }, 'could not stop the ringback'));
  }

  /** The bridge as an app sent over the socket, which stays with the call (see the class comment). */
  private async bridgeOverSocket(target: SipTarget, answerTimeoutS: number, options: ConnectOptions): Promise<ConnectResult> {
    const inline = this.socket.mode === 'static';
    await this.stopHold();
    const appUuid = randomUUID();
    const result = new Promise<ConnectResult>((settle) => {
      // Our own bound on top of originate_timeout, in case FreeSWITCH's events are lost. Not for an
      // inline bridge: its events come only when it has ended, however long the talk.
      const timer = inline ? undefined : setTimeout(() => this.botFailed('no-answer'), (answerTimeoutS + 5) * 1000);
      this.bot = { state: 'dialing', appUuid, settle, timer };
    });
    try {
      // A static socket is not subscribed yet: its events tell how the bridge went, once it has
      // ended; meanwhile FreeSWITCH sets TWIN_STATUS=CONNECTED itself when the bot answers.
      if (inline) await this.socket.subscribe();
      // Sent ahead of the bridge on the same socket: FreeSWITCH runs `api` at once and queues the
      // bridge after it, so a REFER can never find the caller without force_transfer_context.
      // Inline: also what twin-after-socket's `released` needs, should the product die mid-call.
      const extra = [...this.takePendingVars(), ...(inline ? [...CONNECTED_HOOK, ...afterBotVariables(options.afterBot)] : [])];
      const guard = this.transferGuarded && extra.length === 0 ? Promise.resolve() : this.guardTransfers(options, extra);
      const bridge = this.socket.execute('bridge', dialString(this.cfg.bot_endpoint, target, answerTimeoutS), appUuid, 2 ** 31 - 1);
      await guard;
      if (inline) void bridge.catch(() => { /* the events tell */ });
      else await bridge;
    } catch (err) {
      this.log.warn({ callId: this.id, err: (err as Error).message }, 'bot leg could not be dialled');
      this.botFailed('error');
    }
    return result;
  }

  /**
   * One `uuid_setvar_multi`: force_transfer_context=twin-transfers (so a REFER can never reach the
   * caller's own context), the allowed names, the ring timeout and the route's fallback, which
   * dialplan/freeswitch/twin-transfers.xml reads. Set for every call, transfers configured or not.
   */
  private async guardTransfers(options: ConnectOptions, extra: string[] = []): Promise<void> {
    const vars = [...extra, ...(this.transferGuarded ? [] : this.transferVars(options))];
    this.transferGuarded = true;
    this.hooked = extra.includes(CONNECTED_HOOK[0]!);
    await this.apiOk(`uuid_setvar_multi ${this.id} ${vars.join(';')}`).catch((err: Error) =>
      this.log.warn({ callId: this.id, err: err.message }, 'could not set the transfer variables'));
  }

  private transferVars(options: ConnectOptions): string[] {
    const { vars, ambiguous } = transferVariables(options);
    if (ambiguous.length > 0) {
      this.log.warn({ callId: this.id, names: ambiguous }, 'transfer names that differ only in case are refused on FreeSWITCH (its variables ignore case)');
    }
    return vars;
  }

  async setStatus(status: TwinStatus): Promise<void> {
    // Handed back: twin-after-socket sets it (CONNECTED when the bot answers, BOT_FAILED ...); an
    // inline bridge's hook set CONNECTED when the bot answered (its events come only afterwards).
    if (this.released || this.handedOnByBot() || (status === 'CONNECTED' && (this.hooked || this.willRelease()))) return;
    await this.apiOk(`uuid_setvar ${this.id} TWIN_STATUS ${status}`);
  }

  /** The bot sent the caller on: twin-transfers has them now, and sets TWIN_STATUS itself. */
  private handedOnByBot(): boolean {
    return this.bot.state === 'transferring' || this.bot.state === 'transferred';
  }

  async leave(action: Fallback, status: TwinStatus): Promise<void> {
    if (this.released) return; // FreeSWITCH's dialplan does it (twin-after-socket), as we told it to
    if (this.handedOnByBot()) return; // never hang up or move a caller the bot handed to a person
    clearTimeout(this.holdTimer);
    // A status that could not be set must never keep the caller here: the exit goes out anyway.
    const statusError = await this.leavingStatus(status).then(() => undefined, (err: Error) => err);
    if (this.hold_) this.hold_.stopped = true; // uuid_kill and uuid_transfer end the playback themselves
    if (action.action === 'hangup') await this.apiOk(`uuid_kill ${this.id} ${causeName(action.cause)}`);
    else await this.apiOk(`uuid_transfer ${this.id} ${action.extension} XML ${action.context}`);
    if (statusError) this.log.warn({ callId: this.id, err: statusError.message }, 'could not set TWIN_STATUS');
  }

  /** TWIN_STATUS for a caller leaving us; once the bot is gone, its transfer guard (and hook) goes too (same round trip). */
  private async leavingStatus(status: TwinStatus): Promise<void> {
    if (!this.transferGuarded) return this.setStatus(status);
    const unhook = this.hooked ? ['bridge_pre_execute_aleg_app=', 'bridge_pre_execute_aleg_data='] : [];
    await this.apiOk(`uuid_setvar_multi ${this.id} ${[`TWIN_STATUS=${status}`, RELEASE_TRANSFER_GUARD, ...unhook].join(';')}`);
  }

  /**
   * Closes the socket. An async one only once the channel has left it (bounded): with `linger`
   * FreeSWITCH never closes it. A static one at once: the caller's thread waits in `socket` for
   * it, and a `uuid_transfer` takes effect only then (p9).
   */
  async release(): Promise<void> {
    clearTimeout(this.holdTimer);
    if (this.bot.state === 'dialing') clearTimeout(this.bot.timer);
    if (this.socket.mode === 'static') return this.socket.close();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, FINAL_EVENTS_MS); });
    await Promise.race([this.finished, bound]);
    clearTimeout(timer);
    this.socket.close();
  }

  // ---- events ----

  private onEvent(event: EslEvent): void {
    if (this.released) return; // the goodbye after our close, not the caller's hang-up
    switch (event.name) {
      case 'CHANNEL_EXECUTE':
        if (this.hold_ && event.get('Application-UUID') === this.hold_.appUuid) this.hold_.markStarted();
        if (event.get('Application') === 'event') this.onTransferVerdict(verdictOfEventApp(event.get('Application-Data')), event);
        return;
      case 'CHANNEL_BRIDGE': return this.onBotAnswered();
      case 'CHANNEL_EXECUTE_COMPLETE': return this.onAppComplete(event);
      case 'CHANNEL_HANGUP': return this.onCallerGone(event);
      case 'CHANNEL_HANGUP_COMPLETE': return this.markFinished();
      case 'DISCONNECT_NOTICE':
        // linger: the channel hung up; disconnect: FreeSWITCH closes the socket next.
        return this.onCallerGone();
    }
  }

  private onAppComplete(event: EslEvent): void {
    const app = event.get('Application');
    if (app === 'socket') return this.markFinished(); // transferred (b3) or hung up: no longer ours
    if (app !== 'bridge' || event.get('Application-UUID') !== this.botAppUuid()) return;
    if (this.bot.state === 'dialing') {
      if (this.ended.aborted) return this.settleBot({ kind: 'caller-gone' });
      this.settleBot({
        kind: 'failed', reason: failureFromDisposition(event), sipCode: sipCode(event),
        pbxReason: event.get('variable_originate_disposition') ?? event.get('variable_DIALSTATUS'),
      });
    } else if (this.bot.state === 'answered') {
      const away = transferredAway(event, this.transferHistory);
      if (away) return this.onTransferredAway(away);
      this.bot = { state: 'done' };
      if (!this.ended.aborted) this.resolveEnd?.('bot'); // a3: the caller is still here, parked
    }
  }

  /**
   * The bridge ended because the caller was transferred (s9-refer: the bot's REFER). Never "the
   * bot hung up first": FreeSWITCH runs the caller's new dialplan, and nothing of ours may touch it.
   */
  private onTransferredAway(away: { target: string; context: string }): void {
    if (away.context === TRANSFER_CONTEXT) {
      this.bot = { state: 'transferring', target: away.target };
      this.log.info({ callId: this.id, transferTarget: away.target }, 'the bot asked to transfer the caller; twin-transfers decides');
      return;
    }
    // Not in twin-transfers (force_transfer_context could not be set, or someone else moved the caller):
    // FreeSWITCH has sent the caller on already; all we can do is follow the call to its end.
    this.log.warn({ callId: this.id, transferTarget: away.target, context: printableName(away.context) },
      `the caller was transferred outside ${TRANSFER_CONTEXT} (is force_transfer_context in effect?)`);
    this.becomeTransferred(away.target);
  }

  /** twin-transfers told what became of the bot's transfer (CUSTOM event, or the `event` app on the socket). */
  onTransferVerdict(verdict: TransferVerdict | undefined, event: EslEvent): void {
    if (verdict === undefined || (this.bot.state !== 'transferring' && this.bot.state !== 'answered')) return;
    const asked = this.bot.state === 'transferring' ? this.bot.target : printableName(event.get('Caller-Destination-Number') ?? '');
    const target = targetOf(event, asked);
    if (verdict === 'transferred') return this.becomeTransferred(target);
    this.bot = { state: 'done' };
    const reason = verdict === 'refused'
      ? `${target} is not among the route's transfers`
      : `${target} did not take the call (${printableName(event.get('variable_originate_disposition') ?? 'unknown')})`;
    this.resolveEnd?.({ kind: 'transfer-failed', target, reason, callerSentOn: true });
    if (this.released) this.markFinished(); // the fallback has the caller; nothing left to learn
  }

  private becomeTransferred(target: string): void {
    let settle!: (who: EndedBy) => void;
    const ended = new Promise<EndedBy>((resolve) => { settle = resolve; });
    this.bot = { state: 'transferred', target, settle };
    this.resolveEnd?.({ kind: 'transferred', target, ended });
  }

  private onBotAnswered(answeredAgoMs?: number): void {
    if (this.bot.state !== 'dialing') return;
    const { appUuid, settle, timer } = this.bot;
    clearTimeout(timer);
    this.bot = { state: 'answered', appUuid };
    const release = this.willRelease();
    const ended = new Promise<BotLegEnd>((resolve) => { this.resolveEnd = resolve; });
    settle({ kind: 'answered', ended, ...(answeredAgoMs !== undefined ? { answeredAgoMs } : {}) });
    if (release) void this.handOver();
  }

  /** An inline bridge (static socket) is over when its events arrive: handing it over is moot. */
  private willRelease(): boolean {
    return !this.released && this.socket.mode === 'async' && this.afterBot !== undefined && this.bot.state === 'answered'
      && this.host.canFollow();
  }

  /** The handed-back call's bridge answered (CHANNEL_BRIDGE over the inbound connection). */
  onFollowedBridge(event: EslEvent): void {
    if (!this.handedBack) return; // a later bridge of a handed-over call: twin-transfers' person
    this.onBotAnswered(agoMs(event.get('Event-Date-Timestamp')));
  }

  /**
   * twin-after-socket's `bot_failed`: the bot's leg was not answered. The dialplan has set
   * TWIN_STATUS=BOT_FAILED and sends the caller to the route's fallback itself; the event carries
   * the caller's variables, so the failure reads as it did from EXECUTE_COMPLETE(bridge) (h2).
   */
  onFollowedBotFailed(event: EslEvent): void {
    if (!this.handedBack || this.bot.state !== 'dialing') return;
    this.settleBot({
      kind: 'failed', reason: failureFromDisposition(event), sipCode: sipCode(event),
      pbxReason: event.get('variable_originate_disposition') ?? event.get('variable_DIALSTATUS'),
    });
    this.markFinished();
  }

  /**
   * Hands the bridged call to FreeSWITCH and closes its socket: an open call socket costs
   * FreeSWITCH CPU for as long as the call lasts (every event of every channel is offered to each
   * socket: measured +1.5 ms of FreeSWITCH CPU per call-second). The variables tell the shipped
   * dialplan after `socket` (context twin-after-socket) what to do if the bot hangs up first; the
   * driver learns of the end over its inbound connection (CHANNEL_HANGUP_COMPLETE, twin::bot_hangup).
   */
  private async handOver(): Promise<void> {
    const after = this.afterBot!;
    const vars = ['TWIN_STATUS=CONNECTED', 'twin_next_step=released', ...afterBotVariables(after)];
    try {
      await this.apiOk(`uuid_setvar_multi ${this.id} ${vars.join(';')}`);
    } catch (err) {
      this.log.warn({ callId: this.id, err: (err as Error).message }, 'could not hand the bridged call to FreeSWITCH; keeping its socket');
      await this.apiOk(`uuid_setvar ${this.id} TWIN_STATUS CONNECTED`).catch(() => {});
      return;
    }
    // The bot may have hung up meanwhile (the bridge already returned): then the call stays ours.
    if (this.ended.aborted || this.bot.state !== 'answered') return;
    this.released = true;
    this.host.follow(this);
    this.socket.close();
  }

  /**
   * A call FreeSWITCH has ended, from the driver's inbound connection: its CHANNEL_HANGUP_COMPLETE,
   * or twin::bot_hangup (the bot hung up first; the dialplan runs after_bot_hangup). `unknown`: it
   * ended while that connection was down, so nothing tells how.
   */
  onReleasedEnd(who: 'caller' | 'bot' | 'unknown', event?: EslEvent): void {
    if (!this.released) return;
    if (who === 'bot') this.resolveEnd?.('bot');
    else if (who === 'unknown' && this.bot.state === 'dialing') {
      this.settleBot({ kind: 'failed', reason: 'error', pbxReason: 'ended while the inbound ESL connection was down, outcome unknown' });
    } else this.onCallerGone(event);
    this.markFinished();
  }

  get isHandedBack(): boolean {
    return this.handedBack;
  }

  /** Handed back, and no answer or failure heard of yet. */
  get isDialing(): boolean {
    return this.handedBack && this.bot.state === 'dialing';
  }

  /** The bot answered while the inbound connection was down (TWIN_STATUS=CONNECTED found at the reconnect). */
  onMissedBridge(): void {
    if (this.isDialing) this.onBotAnswered();
  }

  /** The bot leg failed while the inbound connection was down (TWIN_STATUS=BOT_FAILED): why is not known. */
  onMissedBotFailed(): void {
    if (!this.isDialing) return;
    this.settleBot({ kind: 'failed', reason: 'error', pbxReason: 'failed while the inbound ESL connection was down' });
    this.markFinished();
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** The bot handed the caller to a person: FreeSWITCH has the call, which we only follow. */
  get isTransferred(): boolean {
    return this.handedOnByBot();
  }

  /** The caller's channel hung up (or its socket ended); `event` tells whether it had been transferred meanwhile. */
  private onCallerGone(event?: EslEvent): void {
    if (this.ended.aborted) return;
    clearTimeout(this.holdTimer);
    if (this.bot.state === 'answered' && event) {
      const away = transferredAway(event, this.transferHistory);
      if (away?.context === TRANSFER_CONTEXT) this.bot = { state: 'transferring', target: away.target };
    }
    this.abort.abort(CALLER_GONE);
    const bot = this.bot;
    if (bot.state === 'dialing') this.settleBot({ kind: 'caller-gone' });
    else if (bot.state === 'transferred') bot.settle(endedByAfterTransfer(event));
    else if (bot.state === 'transferring') {
      const reason = `the call ended before ${bot.target} answered (${printableName(event?.get('Hangup-Cause') ?? 'unknown')})`;
      this.resolveEnd?.({ kind: 'transfer-failed', target: bot.target, reason, callerSentOn: true });
    } else this.resolveEnd?.('caller');
  }

  /** The socket is gone: nothing more can be done for this call here (a bridged call goes on in FreeSWITCH, e1). */
  /** The socket closed before `myevents`/`linger` were answered: nothing to do but report it. */
  goneBeforeSetup(): void {
    this.onCallerGone();
    this.markFinished();
  }

  private onSocketEnd(): void {
    if (this.released) return; // we closed it on purpose; the driver reports the end
    // A static socket without `linger`: FreeSWITCH closes it when the caller hangs up (p7).
    if (!this.ended.aborted && !(this.socket.mode === 'static' && this.bot.state === 'none')) {
      const bridged = this.bot.state === 'answered';
      this.log.warn({ callId: this.id }, bridged
        ? 'FreeSWITCH call socket closed while bridged: the call goes on in FreeSWITCH, no longer tracked here'
        : 'FreeSWITCH call socket closed before the call was done: FreeSWITCH continues its dialplan after `socket`');
    }
    this.onCallerGone();
    this.markFinished();
  }

  private botFailed(reason: BotFailure, code?: number): void {
    this.settleBot({ kind: 'failed', reason, sipCode: code });
  }

  private settleBot(result: ConnectResult): void {
    if (this.bot.state !== 'dialing') return;
    clearTimeout(this.bot.timer);
    const { settle } = this.bot;
    this.bot = { state: 'done' };
    settle(result);
  }

  private botAppUuid(): string | undefined {
    return this.bot.state === 'dialing' || this.bot.state === 'answered' ? this.bot.appUuid : undefined;
  }

  /**
   * Apps run one after another, so the bridge would wait behind an endless ringback: break it. A
   * uuid_break sent before the playback has started does nothing, so wait for its CHANNEL_EXECUTE.
   */
  private async stopHold(): Promise<void> {
    clearTimeout(this.holdTimer);
    const hold = this.hold_;
    if (!hold || hold.stopped) return;
    hold.stopped = true;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.cfg.command_timeout_ms); });
    await Promise.race([hold.started, bound, this.finished]);
    clearTimeout(timer);
    await this.apiOk(`uuid_break ${this.id} all`).catch((err: Error) =>
      this.log.warn({ callId: this.id, err: err.message }, 'could not stop the ringback'));
  }

  private async apiOk(command: string): Promise<void> {
    const reply = await this.socket.api(command);
    if (!reply.startsWith('+OK')) throw new Error(`FreeSWITCH: ${command.split(' ')[0]} → ${reply.trim()}`);
  }
}

/** What an FsCall needs from its driver to hand a call back (or over) to FreeSWITCH. */
export interface FollowHost {
  /** Only while the inbound connection is up: it is how a call without its socket is followed. */
  canFollow(): boolean;
  /** Whether FreeSWITCH's twin-after-socket has `bot_failed`, where a handed-back caller goes when the bot fails. */
  canHandBack(): boolean;
  /** From now on the call is followed over the inbound connection. */
  follow(call: FsCall): void;
  /** The hand-back did not take: the call is no longer followed. */
  unfollow(call: FsCall): void;
  /** An API command over the inbound connection (uuid_break while a static socket plays the hold). */
  api(command: string): Promise<string>;
}

/**
 * The hand-back's hook (bridge_pre_execute_aleg_*): when the bot answers, FreeSWITCH sets
 * TWIN_STATUS=CONNECTED and twin_next_step=released (the bot hanging up first then leads to
 * twin-after-socket's `released`); unanswered, twin_next_step stays bot_failed.
 */
const ANSWER_HOOK = ['bridge_pre_execute_aleg_app=multiset', 'bridge_pre_execute_aleg_data=TWIN_STATUS=CONNECTED twin_next_step=released'];

/**
 * An inline bridge (static socket) tells nothing until it has ended: FreeSWITCH itself sets
 * TWIN_STATUS=CONNECTED when the bot answers (bridge_pre_execute_aleg_app, as twin-after-socket's
 * `bot` does), so a caller who hangs up during the talk has it in the CDR.
 */
const CONNECTED_HOOK = ['bridge_pre_execute_aleg_app=set', 'bridge_pre_execute_aleg_data=TWIN_STATUS=CONNECTED'];

const NO_FOLLOW_HOST: FollowHost = {
  canFollow: () => false, canHandBack: () => false, follow: () => {}, unfollow: () => {}, api: () => Promise.reject(new Error('no inbound ESL connection')),
};

/** The route's after_bot_hangup as twin-after-socket's `released` extensions read it. */
function afterBotVariables(after: Fallback): string[] {
  return after.action === 'hangup'
    ? ['twin_after_bot=hangup', `twin_after_cause=${causeName(after.cause)}`]
    : ['twin_after_bot=continue', `twin_after_context=${after.context}`, `twin_after_extension=${after.extension}`];
}

/** multiset's delimiters, tried in order: a header value may hold `;` and `,`, a dial string `|` (failover). */
const MULTISET_DELIMITERS = ['|', '^', '`', '<', '>', '%', '&'];

/**
 * `multiset`'s argument: `^^<d>a=b<d>c=d` with a delimiter <d> that no variable holds (mod_dptools
 * splits on it alone, and keeps quotes and backslashes as they are).
 */
export function multisetArgument(vars: string[]): string {
  const delimiter = MULTISET_DELIMITERS.find((d) => !vars.some((v) => v.includes(d)));
  if (delimiter === undefined) throw new Error('no multiset delimiter is free: a variable holds all of | ^ ` < > % &');
  return `^^${delimiter}${vars.join(delimiter)}`;
}

/** How long ago an event's Event-Date-Timestamp (microseconds since the epoch) was, if sane. */
function agoMs(stamp: string | undefined): number | undefined {
  const at = Number(stamp) / 1000;
  if (!Number.isFinite(at) || at <= 0) return undefined;
  const ago = Date.now() - at;
  return ago >= 0 && ago < 60_000 ? ago : undefined;
}

/**
 * From the dialplan's `twin_handover_us=${strmicroepoch()}` (set just before `socket`) to the
 * CHANNEL_DATA FreeSWITCH sent once the product took the socket: both on FreeSWITCH's clock. On a
 * box short of CPU the wait is in accepting the connection. Unknown without that variable.
 */
function handoverDelay(data: EslEvent): number | undefined {
  const handedOverUs = data.get('variable_twin_handover_us');
  if (handedOverUs === undefined) return undefined;
  return delayBetween(Number(handedOverUs) / 1000, Number(data.get('Event-Date-Timestamp')) / 1000);
}

/** Channel variables twin_bot, twin_record, twin_var_lang ... set by the dialplan → route hints bot, record, var_lang. */
export function routeHints(data: EslEvent): Record<string, string> {
  const hints: Record<string, string> = {};
  for (const [name, value] of data.entries()) {
    if (name.startsWith('variable_twin_')) hints[name.slice('variable_twin_'.length)] = value;
  }
  return hints;
}

/** A failed bot leg in the words of the call flow's outcome line (`bot leg busy (SIP 486)`). */
export function botFailureDetail(event: EslEvent): string {
  const code = sipCode(event);
  const pbxReason = event.get('variable_originate_disposition') ?? event.get('variable_DIALSTATUS');
  const why = code ? ` (SIP ${code})` : pbxReason ? ` (${pbxReason}, no SIP answer from Twin)` : '';
  return `bot leg ${failureFromDisposition(event)}${why}`;
}

/** FreeSWITCH's originate result (fixture table "Values observed") → what happened to the bot leg. */
export function failureFromDisposition(event: EslEvent): BotFailure {
  const disposition = event.get('variable_originate_disposition') ?? event.get('variable_DIALSTATUS') ?? '';
  return failureFromCauseName(disposition, sipCode(event));
}

/** A FreeSWITCH hang-up cause name (and SIP code, if known) → what happened to the dialled leg. */
export function failureFromCauseName(disposition: string, code?: number): BotFailure {
  if (disposition === 'USER_BUSY' || code === 486 || code === 600) return 'busy';
  if (['NO_ANSWER', 'ALLOTTED_TIMEOUT', 'NO_USER_RESPONSE', 'PROGRESS_TIMEOUT'].includes(disposition)) return 'no-answer';
  if ((code !== undefined && code >= 500) || ['NORMAL_TEMPORARY_FAILURE', 'NORMAL_CIRCUIT_CONGESTION', 'SWITCH_CONGESTION',
    'DESTINATION_OUT_OF_ORDER', 'NETWORK_OUT_OF_ORDER', 'GATEWAY_DOWN', 'RECOVERY_ON_TIMER_EXPIRE'].includes(disposition)) return 'unavailable';
  return 'error';
}

function sipCode(event: EslEvent): number | undefined {
  const m = /^sip:(\d{3})$/.exec(event.get('variable_last_bridge_proto_specific_hangup_cause') ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * `{sip_h_X-TWIN-CallId=...,originate_timeout=30}sofia/gateway/twin/twinbot`. Header values are
 * already restricted to safe characters; ones with a comma or space are single-quoted so
 * FreeSWITCH does not split them.
 */
export function dialString(endpointTemplate: string, target: SipTarget, answerTimeoutS: number): string {
  const vars = Object.entries(target.headers).map(([name, value]) => `sip_h_${name}=${quoteIfNeeded(value)}`);
  // Our own cleaned identity: inherited, the caller's raw number reached Remote-Party-ID with its
  // CR LF, and some display names made FreeSWITCH fail to build the leg (second recording).
  vars.push(`origination_caller_id_number=${target.callerId.number}`, `origination_caller_id_name=${quoteIfNeeded(target.callerId.name)}`);
  vars.push(`originate_timeout=${answerTimeoutS}`);
  const address = target.uri.replace(/^sips?:/, '');
  const user = address.split('@')[0] ?? address;
  const endpoint = endpointTemplate.replace('{uri}', target.uri).replace('{address}', address).replace('{user}', user);
  return `{${vars.join(',')}}${endpoint}`;
}

function quoteIfNeeded(value: string): string {
  return /[, ]/.test(value) ? `'${value}'` : value;
}
