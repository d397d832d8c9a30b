/**
 * Asterisk driver: keeps the ARI connection (with reconnects), turns StasisStart of a caller into
 * an AnsweredCall for the call flow, routes each later event to its call, and publishes the trunk
 * state as the custom device state Custom:<name>.
 */
import type { AsteriskConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { TrunkSnapshot } from '../../core/trunk.js';
import type { DialRequest, DialResult, PbxDialer } from '../../core/types.js';
import { asteriskDeviceState, Backoff, LatestValuePublisher, TrunkAnnouncer, type ConnectionState } from '../shared.js';
import { AriCall, failureFromCause, type AriCallHost } from './ari-call.js';
import { LeftoverBridges } from './leftover-bridges.js';
import { DialplanCall, parseDialReport, type DialReport } from './dialplan-call.js';
import { AriRest, probeAri, USED_EVENTS, type AriChannel, type AriEvent } from './ari-rest.js';
import { systemClock, type Clock } from '../../clock.js';
import { HandoverDelay, monotonicNow } from '../../core/handover-delay.js';
import { BotEndpointWatch } from '../bot-endpoint.js';
import { asteriskBotEndpoint } from './bot-endpoint.js';
import { resolveBotLeg, type BotLegMode } from './bot-leg-mode.js';
import type { JournalCall } from '../../core/call-journal.js';
import { EarlierCalls, TAKEN_OVER, type EarlierCallEnd, type EarlierCallReport } from '../earlier-calls.js';

export type CallHandler = (call: AriCall | DialplanCall) => void;
type Call = AriCall | DialplanCall;

/**
 * How often calls handed to the dialplan are checked for having ended unreported. A report is lost
 * only while ARI is away, and the sweeps 1 s and 5 s after each reconnect catch those; this one is a
 * safety net. Each sweep lists every channel (~1.5 MB from Asterisk with 1000 channels up).
 */
const HANDED_OFF_SWEEP_MS = 300_000;
const AFTER_RECONNECT_SWEEPS_MS = [1000, 5000];

const REMEMBER_FINISHED = 10_000;

interface PendingDial {
  request: DialRequest;
  settle: (result: DialResult) => void;
  timer: NodeJS.Timeout;
}

/** How long the dialplan skips the ringback after a caller reached our app late. */
const QUIET_HOLD_MS = 5000;

export class AsteriskDriver implements AriCallHost, PbxDialer {
  readonly pbx = 'asterisk' as const;
  private restClient?: AriRest;
  private readonly calls = new Map<string, Call>();
  private readonly botLegs = new Map<string, AriCall>();
  /** Legs to the person a bot transferred its caller to (ours, or Asterisk's Local channel). */
  private readonly transferLegs = new Map<string, AriCall>();
  /** Who acts on a bot's REFER; decided from Asterisk's version at each connection. */
  transferHandling: 'ari' | 'core' = 'core';
  /** Who opens the bot leg of new calls (asterisk.bot_leg, auto resolved at each connection). */
  botLeg: BotLegMode = 'bridge';
  /** Outbound calls ringing: channel id → who waits for the answer. */
  private readonly dials = new Map<string, PendingDial>();
  /** Channels of calls that have left the product (most recent REMEMBER_FINISHED). */
  private readonly finished = new Set<string>();
  /**
   * Callers whose flow ended but whose every exit request failed: still in our app, so never hidden
   * as finished. Hung up again with backoff until ARI confirms (or reports the channel gone).
   */
  private readonly owedExits = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  private stopped = false;
  private readonly backoff = new Backoff();
  private retryTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private readonly trunk: LatestValuePublisher;
  /** What the dialplan is told of the trunk (DEVICE_STATE(Custom:<device_state>)). */
  private readonly announcer: TrunkAnnouncer;
  private readonly leftovers: LeftoverBridges;
  state: ConnectionState = 'connecting';
  /** Why the last connection attempt failed, in plain words. */
  lastProblem?: string;
  /** Whether Asterisk has the bot endpoint's PJSIP endpoint: checked at each connection and every minute. */
  readonly botEndpoint: BotEndpointWatch;
  /** Calls an earlier run sent to Twin and never counted: followed to their end (see followEarlier). */
  private earlier = new EarlierCalls();
  /** Earlier runs' calls in a leftover bridge whose caller the bot had transferred: caller id → the target's name. */
  private readonly earlierTransfers = new Map<string, string>();
  /** How late callers reach us after entering Stasis(): Asterisk's app queue backs up on a box out of CPU. */
  private readonly handoverDelay = new HandoverDelay(monotonicNow);

  constructor(readonly cfg: AsteriskConfig, readonly log: Logger, private readonly onCall: CallHandler, clock: Clock = systemClock) {
    this.leftovers = new LeftoverBridges(() => this.rest, log, (callerId, left, seen) => this.onLeftoverEnded(callerId, left, seen));
    this.botEndpoint = new BotEndpointWatch(
      () => asteriskBotEndpoint(cfg.bot_endpoint, (tech, resource) => this.rest.endpoint(tech, resource)), log, clock,
    );
    this.trunk = new LatestValuePublisher(
      (value) => this.rest.setGlobal(`DEVICE_STATE(Custom:${cfg.device_state})`, value),
      () => this.restClient !== undefined && this.state === 'connected',
      log, 'the trunk device state',
    );
    this.announcer = new TrunkAnnouncer((word) => this.trunk.set(asteriskDeviceState(word)), clock);
  }

  get rest(): AriRest {
    if (!this.restClient) throw new Error('ARI is not connected');
    return this.restClient;
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  /** Why calls cannot be put through to the bot now (Asterisk lacks its endpoint); undefined when they can. */
  get botEndpointMissing(): string | undefined {
    return this.botEndpoint.missing;
  }

  /**
   * Before start(): the calls an earlier run of the product sent to Twin through this Asterisk and
   * never counted (from the call journal). At each connection the ones gone are reported as ended
   * while no run was up; the others are followed, in a bridge of that run (`bot_leg: bridge`) or in
   * the bot dialplan (`bot_leg: dialplan`, whose end report reaches this run), and reported at their end.
   */
  followEarlier(calls: readonly JournalCall[], report: EarlierCallReport): void {
    this.earlier = new EarlierCalls(calls, report);
  }

  /** Connects, retrying with backoff until connected or stopped; resolves on the first connection. */
  start(): Promise<void> {
    this.stopped = false;
    this.botEndpoint.start();
    return new Promise((resolve) => this.connect(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    this.botEndpoint.stop();
    clearTimeout(this.retryTimer);
    clearInterval(this.sweepTimer);
    // Owed exits are left to the next start's reconcile: a caller in the app with TWIN_STATUS set is hung up.
    for (const owed of this.owedExits.values()) clearTimeout(owed.timer);
    this.owedExits.clear();
    this.cancelDials();
    this.restClient?.stop();
  }

  /** Hangs up every call still with us (shutdown timeout); their flows then release bridges and bot legs. */
  async hangupAll(): Promise<void> {
    this.cancelDials();
    // Once hung up, a call is over for us: its StasisEnd may never come, as ARI closes next.
    await Promise.allSettled([...this.calls.values()].map((call) =>
      call.leave({ action: 'hangup', cause: 16 }, 'ERROR').finally(() => this.onCallGone(call))));
  }

  /** Outbound calls still ringing: the subscriber's phone stops ringing, the dial fails. */
  private cancelDials(): void {
    for (const id of [...this.dials.keys()]) {
      void this.restClient?.hangup(id).catch(() => {});
      this.settleDial(id, { kind: 'failed', reason: 'error', detail: 'the product is stopping' });
    }
  }

  /** Shows the trunk to the dialplan: DEVICE_STATE(Custom:<name>) through ARI's global-variable call. */
  publishTrunk(trunk: TrunkSnapshot): void {
    this.announcer.set(trunk);
  }

  /** The product shed a caller it took too late: Custom:<device_state> ONHOLD for `holdMs` (the shipped dialplan's overload check). */
  markOverloaded(holdMs: number): void {
    this.announcer.markOverloaded(holdMs);
  }

  /**
   * Asterisk took longer than `quiet_ringback_above_ms` from a caller's channel to its StasisStart
   * (both its own clock): it is short of CPU. [from-customers-answered] then skips `Playtones(ring)` for
   * QUIET_HOLD_MS (Custom:<device_state> INUSE): the tones of callers waiting for Twin are what
   * tips a full Asterisk over (bench/real-pbx, a Twin of 0.3-1.5 s: ~3 ms of Asterisk CPU per
   * second of ringback per caller), and once over, the longer waits ring more.
   */
  private quietIfLate(channel: AriChannel, timestamp: string | undefined): void {
    const boundMs = this.cfg.quiet_ringback_above_ms;
    if (boundMs === 0 || channel.creationtime === undefined || timestamp === undefined) return;
    const lateMs = Date.parse(timestamp) - Date.parse(channel.creationtime);
    if (lateMs > boundMs) this.announcer.markQuiet(QUIET_HOLD_MS);
  }

  /**
   * ARI originate into our app (fixture b1): the channel enters Stasis when the subscriber answers;
   * a failed dial ends with ChannelDestroyed and its cause, without StasisStart.
   */
  originate(request: DialRequest): Promise<DialResult> {
    return new Promise((settle) => {
      // Our own bound on top of Asterisk's ring timeout, in case its events are lost.
      const timer = setTimeout(() => {
        this.settleDial(request.id, { kind: 'failed', reason: 'no-answer', detail: 'no answer and no event from Asterisk' });
        if (this.restClient) void this.restClient.hangup(request.id).catch(() => {});
      }, (request.ringTimeoutS + 10) * 1000);
      this.dials.set(request.id, { request, settle, timer });
      try {
        this.rest.originate({
          channelId: request.id,
          endpoint: this.cfg.outbound_endpoint.replace('{number}', request.to),
          callerId: request.from,
          timeout: request.ringTimeoutS,
          appArgs: 'outbound',
          variables: { TWIN_DIRECTION: 'outbound' },
        }).catch((err: Error) => this.settleDial(request.id, { kind: 'failed', reason: 'error', detail: `Asterisk refused the call: ${err.message}` }));
      } catch (err) {
        this.settleDial(request.id, { kind: 'failed', reason: 'error', detail: (err as Error).message });
      }
    });
  }

  private settleDial(id: string, result: DialResult): void {
    const dial = this.dials.get(id);
    if (!dial) return;
    clearTimeout(dial.timer);
    this.dials.delete(id);
    dial.settle(result);
  }

  // ---- AriCallHost ----

  registerBotLeg(botId: string, call: AriCall): void {
    this.botLegs.set(botId, call);
  }

  registerTransferLeg(legId: string, call: AriCall): void {
    this.transferLegs.set(legId, call);
  }

  forget(call: Call): void {
    this.calls.delete(call.id);
    if (call.exitOwed && !call.ended.aborted) this.oweExit(call.id);
    else this.remember(call.id);
    const botId = call.botLegId;
    if (botId !== undefined) {
      this.botLegs.delete(botId);
      this.remember(botId);
    }
    for (const id of call.transferLegIds ?? []) {
      this.transferLegs.delete(id);
      this.remember(id);
    }
  }

  /** A channel we are done with may still sit in Stasis for a moment: never pick it up again. */
  private remember(id: string): void {
    this.finished.add(id);
    if (this.finished.size > REMEMBER_FINISHED) this.finished.delete(this.finished.values().next().value!);
  }

  private oweExit(id: string): void {
    if (this.owedExits.has(id)) return;
    this.log.warn({ callId: id }, 'the caller could not be sent on from the app; hanging it up until Asterisk confirms');
    this.owedExits.set(id, { backoff: new Backoff(1000, 10_000) });
    this.retryOwedExit(id);
  }

  private retryOwedExit(id: string): void {
    const owed = this.owedExits.get(id);
    if (!owed || this.stopped) return;
    owed.timer = setTimeout(() => {
      if (!this.restClient) return this.retryOwedExit(id); // reconnecting: its reconcile checks too
      this.restClient.hangup(id).then(
        () => this.settleOwedExit(id),
        (err: { notFound?: boolean }) => (err.notFound ? this.settleOwedExit(id) : this.retryOwedExit(id)),
      );
    }, owed.backoff.next());
  }

  /** The owed caller has left the app (hung up, or its channel is gone). */
  private settleOwedExit(id: string): void {
    const owed = this.owedExits.get(id);
    if (!owed) return;
    clearTimeout(owed.timer);
    this.owedExits.delete(id);
    this.remember(id);
  }

  // ---- connection ----

  private async connect(onFirstConnect: () => void): Promise<void> {
    if (this.stopped) return;
    const probe = await probeAri(this.cfg);
    if (!probe.ok) return this.retryLater(probe.problem, onFirstConnect);
    this.transferHandling = this.cfg.transfer_handling === 'auto' ? transferHandlingOf(probe.version) : this.cfg.transfer_handling;
    try {
      const rest = await AriRest.connect(this.cfg, this.log);
      if (this.stopped) return rest.stop();
      this.restClient = rest;
      rest.on('event', (event: AriEvent) => this.dispatch(event));
      rest.on('WebSocketConnected', () => void this.onConnected());
      rest.on('WebSocketReconnecting', () => { this.state = 'reconnecting'; });
      rest.on('WebSocketMaxRetries', () => {
        rest.stop();
        this.retryLater('ARI websocket lost; ari-client gave up reconnecting', () => {});
      });
      await this.onConnected();
      onFirstConnect();
    } catch (err) {
      this.retryLater(`ARI connection failed: ${(err as Error).message ?? String(err)}`, onFirstConnect);
    }
  }

  private retryLater(problem: string, onFirstConnect: () => void): void {
    if (this.stopped) return;
    this.state = 'reconnecting';
    const delay = this.backoff.next();
    if (problem !== this.lastProblem) this.log.error({ retryInMs: delay }, problem);
    this.lastProblem = problem;
    this.retryTimer = setTimeout(() => void this.connect(onFirstConnect), delay);
  }

  /** After every (re)connection: narrow the event stream, republish state, settle calls whose events were missed. */
  private async onConnected(): Promise<void> {
    this.state = 'connected';
    this.backoff.reset();
    this.lastProblem = undefined;
    this.log.info({ ariApp: this.cfg.app, transferHandling: this.transferHandling }, 'connected to Asterisk ARI');
    this.botLeg = await resolveBotLeg(this.cfg, this.rest, this.log);
    if (this.botLeg === 'dialplan' && this.sweepTimer === undefined) {
      this.sweepTimer = setInterval(() => this.sweepSoon(), HANDED_OFF_SWEEP_MS);
      this.sweepTimer.unref();
    }
    // Reports sent around a reconnection (the app registered again, our state not yet) may be
    // lost: look again shortly after, not only at the next 30 s sweep.
    for (const ms of AFTER_RECONNECT_SWEEPS_MS) setTimeout(() => this.sweepSoon(), ms).unref();
    await this.rest.filterEvents(USED_EVENTS).catch((err: Error) =>
      this.log.warn({ err: err.message }, 'ARI event filter not accepted (Asterisk older than 16.3?); receiving all events'));
    await this.botEndpoint.check(true); // before reconcile: a stranded caller picked up there goes by it too
    void this.trunk.flush();
    await this.reconcile();
  }

  /**
   * Asterisk does not replay events missed while we were away: ask which channels still exist,
   * settle the calls and dials that ended meanwhile, and pick up callers that entered our app
   * without their StasisStart reaching us.
   */
  private async reconcile(): Promise<void> {
    // Only calls and dials that exist before the list is asked for can be judged by it: one whose
    // StasisStart arrives while the list is on its way is alive but not in it.
    const calls = [...this.calls.values()];
    const dials = [...this.dials.keys()];
    const botLegs = new Set(this.botLegs.keys());
    const transferLegs = new Set(this.transferLegs.keys());
    let channels: AriChannel[];
    try {
      channels = await this.rest.channels();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not list channels after reconnecting');
      return;
    }
    const alive = new Set(channels.map((c) => c.id));
    const byId = new Map(channels.map((c) => [c.id, c]));
    for (const id of dials) {
      if (!alive.has(id)) this.settleDial(id, { kind: 'failed', reason: 'error', detail: 'the call ended while ARI was disconnected' });
    }
    for (const id of [...this.owedExits.keys()]) if (!alive.has(id)) this.settleOwedExit(id);
    for (const call of calls) {
      const botId = call.botLegId;
      if (!alive.has(call.id)) this.onCallGone(call);
      else if (botId !== undefined && botLegs.has(botId) && !alive.has(botId)) call.onBotGone();
      else void this.settleIfReportLost(call, byId.get(call.id));
      const legId = call instanceof AriCall ? call.transferLegIds.at(-1) : undefined;
      if (legId !== undefined && transferLegs.has(legId) && !alive.has(legId)) (call as AriCall).onTransferLegGone(legId);
    }
    for (const id of this.earlier.ids()) if (!alive.has(id)) this.earlier.checked(id, false, 'Asterisk');
    this.leftovers.lookingAtBridges();
    await this.rest.bridges().then(
      async (bridges) => this.leftovers.adopt(bridges, (id) => this.ownsBridge(id), alive,
        (id) => stasisArgs(byId.get(id), this.cfg.app) !== undefined),
      (err: Error) => this.log.warn({ err: err.message }, 'could not list bridges after reconnecting'),
    );
    await this.noteEarlierTransfers();
    await Promise.all(channels.map((channel) => this.pickUpIfStranded(channel)));
    for (const id of this.earlier.ids()) this.placeEarlier(id, byId.get(id));
    this.earlier.announce(this.log);
  }

  /**
   * An earlier run's call still alive: followed while it is in that run's bridge or in the bot
   * dialplan. A caller in our app was dealt with by pickUpIfStranded; anywhere else, its part with
   * the bot is over (it was sent on before this run started).
   */
  private placeEarlier(id: string, channel: AriChannel | undefined): void {
    if (!channel) return;
    if (this.leftovers.has(id) || this.inBotDialplan(channel)) return this.earlier.checked(id, true, 'Asterisk');
    if (stasisArgs(channel, this.cfg.app) !== undefined) return;
    this.earlier.end(id, { status: 'CONNECTED', endedBy: 'unknown', detail: `its part with the bot ended while the product was not running; ${TAKEN_OVER}` });
  }

  /** bot_leg dialplan: the caller is in [twin-bot], where Dial() holds it with the bot. */
  private inBotDialplan(channel: AriChannel): boolean {
    return channel.dialplan?.context === this.cfg.dial_context && channel.dialplan.app_name !== 'Stasis';
  }

  /** Which earlier runs' calls in a leftover bridge the bot had transferred (their outcome is TRANSFERRED). */
  private async noteEarlierTransfers(): Promise<void> {
    await Promise.all(this.earlier.ids().filter((id) => this.leftovers.has(id) && !this.earlierTransfers.has(id)).map(async (id) => {
      const status = await this.rest.getVar(id, 'TWIN_STATUS').catch(() => '');
      if (status !== 'TRANSFERRED') return;
      this.earlierTransfers.set(id, await this.rest.getVar(id, 'TWIN_TRANSFER_TARGET').catch(() => ''));
    }));
  }

  /** A call in a bridge of an earlier run ended: `left` hung up first, `seen` by this run or before it looked. */
  private onLeftoverEnded(callerId: string, left: 'caller' | 'partner', seen: boolean): void {
    if (!this.earlier.has(callerId)) return;
    const target = this.earlierTransfers.get(callerId);
    this.earlierTransfers.delete(callerId);
    const endedBy = left === 'caller' ? 'caller' : target !== undefined ? 'target' : 'bot';
    this.earlier.end(callerId, {
      status: target !== undefined ? 'TRANSFERRED' : 'CONNECTED', endedBy,
      ...(target ? { transferTarget: target } : {}),
      detail: seen ? TAKEN_OVER : `the ${endedBy === 'target' ? 'person' : endedBy} hung up while the product was not running; ${TAKEN_OVER}`,
    });
  }

  /**
   * A caller in our app that we know nothing about entered while its StasisStart was lost: run its
   * call flow now. One with TWIN_STATUS set had its flow run by an earlier run of the product; as it
   * is in no bridge of ours (those are adopted as leftovers), nobody will ever send it on: hung up.
   */
  private async pickUpIfStranded(channel: AriChannel): Promise<void> {
    const args = this.strandedInOurApp(channel);
    if (!args) return;
    const report = parseDialReport(parseStasisArgs(args));
    if (report) return this.onOrphanReport(channel.id, report); // its report of the bot dialplan was lost
    const status = await this.rest.getVar(channel.id, 'TWIN_STATUS').catch(() => undefined);
    if (status === undefined || !this.strandedInOurApp(channel)) return;
    if (status !== '') {
      this.log.warn({ channel: channel.id }, 'a caller whose call flow ended in an earlier run is still in the app; hanging it up');
      this.remember(channel.id);
      this.earlier.end(channel.id, {
        status: status === 'TRANSFERRED' ? 'TRANSFERRED' : 'CONNECTED', endedBy: 'unknown',
        detail: `its part with the bot ended while the product was not running; ${TAKEN_OVER}`,
      });
      return void this.rest.hangup(channel.id).catch(() => {});
    }
    this.log.warn({ channel: channel.id }, 'picking up a call that entered the app while its events were lost');
    this.onStasisStart({ type: 'StasisStart', args, channel });
  }

  private onCallGone(call: Call): void {
    if (call instanceof DialplanCall && call.isHandedOff) call.onGoneWhileHandedOff();
    else call.onCallerLeft();
  }

  /**
   * A caller in the bot dialplan reports its end by entering Stasis from a hangup handler; if ARI
   * was away just then, the report is lost. Now and then, settle handed-off calls whose channel is gone.
   */
  private sweepSoon(): void {
    if (this.stopped) return;
    void this.sweepHandedOff().catch((err: Error) => this.log.warn({ err: err.message }, 'could not check calls in the bot dialplan'));
  }

  private async sweepHandedOff(): Promise<void> {
    const handedOff = [...this.calls.values()].filter((c): c is DialplanCall => c instanceof DialplanCall && c.isHandedOff);
    const earlier = this.earlier.ids();
    if ((handedOff.length === 0 && earlier.length === 0) || this.state !== 'connected') return;
    const channels = new Map((await this.rest.channels()).map((c) => [c.id, c]));
    for (const call of handedOff) {
      if (!channels.has(call.id)) call.onGoneWhileHandedOff();
      else await this.settleIfReportLost(call, channels.get(call.id));
    }
    for (const id of earlier) if (!channels.has(id)) this.earlier.checked(id, false, 'Asterisk');
  }

  /**
   * A call handed to the bot dialplan whose report was lost: back in our app with it (its
   * StasisStart lost), or out of the bot dialplan with STASISSTATUS=FAILED: its report's
   * Stasis() found no app (ARI away) and the dialplan sent the caller on. (Out of it alone is not
   * enough: a transfer moves the caller on too, and reports later from its hangup handler.)
   */
  private async settleIfReportLost(call: Call, channel: AriChannel | undefined): Promise<void> {
    if (!(call instanceof DialplanCall) || !call.isHandedOff) return;
    // Back in our app with its report, but that StasisStart never reached us (sent around a
    // reconnection): the caller would wait there in silence. Take the report from the channel.
    const report = parseDialReport(parseStasisArgs(stasisArgs(channel, this.cfg.app) ?? []));
    if (report) {
      this.log.warn({ callId: call.id }, 'the bot dialplan\'s report reached the app but not us; taking it from the channel');
      return call.onReport(report);
    }
    const context = channel?.dialplan?.context;
    if (context === undefined || context === this.cfg.dial_context) return;
    const status = await this.rest.getVar(call.id, 'STASISSTATUS').catch(() => undefined);
    if (status === 'FAILED' && call.isHandedOff) call.onLeftBotDialplan();
  }

  /** A bridge of a call of this run, live or just finished (its release destroys it). */
  private ownsBridge(bridgeId: string): boolean {
    const callId = bridgeId.slice('twin-'.length);
    return this.calls.has(callId) || this.finished.has(callId);
  }

  /** The Stasis arguments of a channel sitting in our app that we know nothing about. */
  private strandedInOurApp(channel: AriChannel): string[] | undefined {
    const args = stasisArgs(channel, this.cfg.app);
    if (args === undefined) return undefined;
    const known = this.calls.has(channel.id) || this.botLegs.has(channel.id) || this.transferLegs.has(channel.id) || this.dials.has(channel.id)
      || this.finished.has(channel.id) || this.leftovers.has(channel.id) || this.owedExits.has(channel.id);
    return known ? undefined : args;
  }

  // ---- events ----

  private dispatch(event: AriEvent): void {
    const channelId = event.channel?.id;
    try {
      switch (event.type) {
        case 'StasisStart': return this.onStasisStart(event);
        case 'StasisEnd':
          if (channelId === undefined) return;
          this.leftovers.onChannelGone(channelId);
          this.settleOwedExit(channelId);
          this.calls.get(channelId)?.onCallerLeft();
          this.transferLegs.get(channelId)?.onTransferLegGone(channelId);
          // A ringing bot leg's failure cause comes with ChannelDestroyed, right after this.
          return this.botLegs.get(channelId)?.onBotLeftStasis();
        case 'ChannelDestroyed':
          if (channelId === undefined) return;
          this.leftovers.onChannelGone(channelId);
          this.settleOwedExit(channelId);
          this.onDialEnded(channelId, event.cause, event.cause_txt, event.tech_cause);
          this.calls.get(channelId)?.onCallerLeft();
          this.transferLegs.get(channelId)?.onTransferLegGone(channelId);
          return this.botLegs.get(channelId)?.onBotGone(event.cause, event.tech_cause);
        case 'Dial':
          if (event.dialstatus === 'ANSWER' && event.peer) {
            this.botLegs.get(event.peer.id)?.onBotAnswered();
            this.transferLegs.get(event.peer.id)?.onTransferLegAnswered(event.peer.id);
          }
          return;
        case 'ChannelTransfer': return this.onChannelTransfer(event);
      }
    } catch (err) {
      this.log.error({ err, type: event.type }, 'could not handle an ARI event');
    }
  }

  private onStasisStart(event: AriEvent): void {
    const channel = event.channel;
    if (!channel) return;
    const args = event.args ?? [];
    const report = parseDialReport(parseStasisArgs(args));
    const known = this.calls.get(channel.id);
    if (known) return void (report && known instanceof DialplanCall && known.onReport(report));
    if (report) return this.onOrphanReport(channel.id, report);
    const botLeg = this.botLegs.get(channel.id);
    if (botLeg) return botLeg.onBotInStasis();
    const transferLeg = this.transferLegs.get(channel.id);
    if (transferLeg) return transferLeg.onTransferLegInStasis(channel.id);
    const replaced = event.replace_channel && this.botLegs.get(event.replace_channel.id);
    if (replaced) return replaced.onReplacedByTransfer(channel.id, channel.dialplan?.exten ?? '');
    const replacedLeg = event.replace_channel && this.transferLegs.get(event.replace_channel.id);
    if (replacedLeg) return replacedLeg.onTransferLegReplaced(event.replace_channel!.id, channel.id);
    if (event.replace_channel) {
      // A swap into a bridge we do not follow: never a caller of ours.
      this.log.warn({ channel: channel.id }, 'a channel swapped in for one we do not know entered the app; hanging it up');
      void this.rest.hangup(channel.id).catch(() => {});
      return;
    }
    if (args[0] === 'transfer') {
      this.log.warn({ channel: channel.id }, 'unknown transfer leg of ours entered the app; hanging it up');
      void this.rest.hangup(channel.id).catch(() => {});
      return;
    }
    const dial = this.dials.get(channel.id);
    if (dial) return this.onDialAnswered(dial);
    if (args[0] === 'bot' || args[0] === 'outbound') {
      // A bot leg we no longer track, or a subscriber answering a dial nobody waits for (from
      // before a restart, or after its timeout): never treat it as a caller.
      this.log.warn({ channel: channel.id, kind: args[0] }, 'unknown channel of ours entered the app; hanging it up');
      void this.rest.hangup(channel.id).catch(() => {});
      return;
    }
    const call = this.newCall(
      channel.id, channel.caller?.number ?? '', channel.caller?.name ?? '', channel.dialplan?.exten ?? '', parseStasisArgs(args),
    );
    this.earlier.forget(channel.id); // sent to Twin by an earlier run, left waiting in the app: this call flow counts it
    call.answeredByPbx = channel.state === undefined || channel.state === 'Up';
    call.handoverDelayMs = this.handoverDelay.observe(Date.parse(event.timestamp ?? ''));
    this.quietIfLate(channel, event.timestamp);
    this.calls.set(channel.id, call);
    this.onCall(call);
  }

  private newCall(id: string, caller: string, callerName: string, dialed: string, hints: Record<string, string>, direction: 'inbound' | 'outbound' = 'inbound'): Call {
    // Outbound calls take the dialplan only when asked by name: auto keeps them on the bridge path.
    const mode = direction === 'outbound' && this.cfg.bot_leg === 'auto' ? 'bridge' : this.botLeg;
    const Kind = mode === 'dialplan' ? DialplanCall : AriCall;
    return new Kind(this, id, caller, callerName, dialed, hints, direction);
  }

  /**
   * The bot dialplan reports a call this run never handed to it (the product restarted meanwhile):
   * the call is counted if the earlier run never did; a caller back from Dial() is hung up rather
   * than left in the app; a hangup report needs nothing more.
   */
  private onOrphanReport(channelId: string, report: DialReport): void {
    this.earlier.end(channelId, earlierEndOfReport(report));
    if (report.report === 'hangup') return;
    this.remember(channelId);
    this.log.warn({ channel: channelId }, 'a caller came back from the bot dialplan of an earlier run; hanging up');
    void this.rest.hangup(channelId).catch(() => {});
  }

  private onDialAnswered({ request }: PendingDial): void {
    const call = this.newCall(request.id, request.from, '', request.to, {}, 'outbound');
    this.calls.set(request.id, call);
    this.settleDial(request.id, { kind: 'answered', call });
  }

  /**
   * A bot's REFER with ari-only handling. Only the first event of a transfer is a request: the
   * later ones echo the state the app reported (recording refer-ari-only).
   */
  private onChannelTransfer(event: AriEvent): void {
    const botId = event.referred_by?.source_channel?.id;
    if (event.state !== undefined || botId === undefined) return;
    this.botLegs.get(botId)?.onTransferRequest(event.refer_to?.requested_destination?.destination ?? '');
  }

  private onDialEnded(id: string, cause?: number, causeText?: string, techCause?: number): void {
    if (!this.dials.has(id)) return;
    const detail = `cause ${cause ?? '?'}${causeText ? ` (${causeText})` : ''}${techCause ? `, SIP ${techCause}` : ''}`;
    this.settleDial(id, { kind: 'failed', reason: failureFromCause(cause, techCause), cause, detail });
  }
}

/**
 * ari-only REFER handling came with Asterisk 20.13, 21.8 and 22.3 (and is in every later major);
 * certified and development builds are taken as without it.
 */
export function transferHandlingOf(version: string): 'ari' | 'core' {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?(?:-sim)?$/.exec(version.trim());
  if (!m) return 'core';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const firstMinor: Record<number, number> = { 20: 13, 21: 8, 22: 3 };
  if (major > 22) return 'ari';
  return firstMinor[major] !== undefined && minor >= firstMinor[major]! ? 'ari' : 'core';
}

/** How a call an earlier run handed to the bot dialplan ended, from the dialplan's report. */
function earlierEndOfReport(report: DialReport): EarlierCallEnd {
  const byCaller = report.report === 'hangup';
  if (report.dialStatus === 'ANSWER' && report.transferTarget !== undefined) {
    return { status: 'TRANSFERRED', endedBy: byCaller ? 'caller' : 'target', transferTarget: report.transferTarget, detail: TAKEN_OVER };
  }
  if (report.dialStatus === 'ANSWER') return { status: 'CONNECTED', endedBy: byCaller ? 'caller' : 'bot', detail: TAKEN_OVER };
  if (byCaller || report.dialStatus === 'CANCEL') return { status: 'ABANDONED', detail: `the caller hung up while the bot leg rang; ${TAKEN_OVER}` };
  const sip = report.sipCode ? ` (SIP ${report.sipCode})` : '';
  return { status: 'BOT_FAILED', detail: `bot leg ${report.dialStatus || 'failed'}${sip}; ${TAKEN_OVER}` };
}

/** The Stasis arguments of a channel in `app` (from its dialplan app_data), or undefined. */
function stasisArgs(channel: AriChannel | undefined, app: string): string[] | undefined {
  const { app_name: appName, app_data: appData } = channel?.dialplan ?? {};
  if (appName !== 'Stasis' || appData === undefined) return undefined;
  const [name, ...args] = appData.split(',');
  return name === app ? args : undefined;
}

/** Stasis(app,bot=B,record=1,var_x=y) → { bot: 'B', record: '1', var_x: 'y' }; a bare word is ignored. */
export function parseStasisArgs(args: string[]): Record<string, string> {
  const hints: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq > 0) hints[arg.slice(0, eq).trim()] = arg.slice(eq + 1).trim();
  }
  return hints;
}
