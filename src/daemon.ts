/**
 * The running product: Twin's client, the trunk gate and the PBX drivers, wired to the call flow.
 * Its life: built (each part by the function in src/daemon/ named for it), start, serve calls,
 * reload, stop.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from './clock.js';
import type { Config, InboundTwilioConfig } from './config/schema.js';
import type { Logger } from './log.js';
import { runCallFlow, runRefusedCall, type FlowDeps } from './core/call-flow.js';
import { Callbacks } from './callbacks/callbacks.js';
import type { Metrics } from './http/metrics.js';
import { fromOutcome, Outbound, type OutboundResult } from './outbound/outbound.js';
import type { CallRequest } from './outbound/request.js';
import { Campaign, type CampaignLimits } from './outbound/campaign.js';
import type { CampaignRow } from './outbound/campaign-file.js';
import type { Journal } from './outbound/journal.js';
import type { HttpServer, NotReady } from './http/server.js';
import type { Gate, TrunkSnapshot } from './core/trunk.js';
import type { AnsweredCall, CallOutcome } from './core/types.js';
import { TwinHttp } from './twin/http.js';
import { TwinAuth } from './twin/auth.js';
import { TwinApi } from './twin/warmup.js';
import type { AsteriskDriver } from './pbx/asterisk/driver.js';
import type { FreeSwitchDriver } from './pbx/freeswitch/driver.js';
import { TwilioDriver } from './pbx/twilio/driver.js';
import { TwilioDialer } from './pbx/twilio/outbound-dialer.js';
import type { CallJournal, JournalCall } from './core/call-journal.js';
import type { EarlierCallEnd } from './pbx/earlier-calls.js';
import { buildPbxDrivers, driversOf, type PbxDriver, type PbxDrivers } from './daemon/pbx-drivers.js';
import { buildTrunkGate } from './daemon/trunk-gate.js';
import { buildHttpServer, buildMetrics } from './daemon/ops-http.js';
import { earlierCallOutcome, openCallJournal } from './daemon/call-journal.js';
import { reloadedConfig } from './daemon/reload.js';
import { partsNotReady, twinLoginProblem } from './daemon/readiness.js';

export interface DaemonOptions {
  clock?: Clock;
  log: Logger;
  /**
   * 'dialer' runs beside a daemon for the CLI's call and campaign: its own Stasis app name and a
   * free call-socket port (originate names both), and it leaves the trunk state to the daemon.
   */
  role?: 'daemon' | 'dialer';
}

/**
 * How long FreeSWITCH's dialplan is told to skip us after a shed caller (see markOverloaded): long
 * enough to catch up, short enough not to turn away callers we could serve.
 */
const OVERLOAD_HOLD_MS = 300;

/** Emits 'outcome' (CallOutcome) when a call has left the product, and 'trunk' (TrunkSnapshot). */
export class Daemon extends EventEmitter {
  readonly clock: Clock;
  readonly gate: Gate;
  readonly twin: TwinApi;
  readonly asterisk?: AsteriskDriver;
  readonly freeswitch?: FreeSwitchDriver;
  /** Calls to Twilio numbers (the daemon's only: a dialer takes no incoming calls). */
  readonly twilio?: TwilioDriver;
  /** Outbound calls over Twilio's Calls API (daemon and dialer alike: it needs no port of its own). */
  readonly twilioDialer?: TwilioDialer;
  /** Twilio calls' warm-ups: same login and connections, bounded under Twilio's webhook limit. */
  private twilioTwin?: TwinApi;
  readonly outbound: Outbound;
  /** The HTTP port (health, metrics, trunk, callbacks, dialer API), when configured and running as the daemon. */
  readonly httpServer?: HttpServer;
  readonly metrics?: Metrics;
  readonly callbacks?: Callbacks;
  private readonly drivers: PbxDrivers;
  private readonly publishesTrunk: boolean;
  private readonly http: TwinHttp;
  private readonly log: Logger;
  private readonly live = new Set<Promise<unknown>>();
  private stopping = false;
  private stopped?: Promise<void>;
  /** The readiness reasons last logged: details are logged when these change, not on every probe. */
  private loggedReasons = '';
  /** Aborted by a second SIGTERM: stop waiting for live calls. */
  private readonly impatience = new AbortController();
  /** Calls sent to Twin and not yet counted, kept across restarts (state.dir); the daemon's only, not a dialer's. */
  private journal?: CallJournal;
  /** Why the call journal could not be opened: calls are taken, but ones outliving this run may go uncounted. */
  private journalProblem?: string;

  constructor(private config: Config, options: DaemonOptions) {
    super();
    this.clock = options.clock ?? systemClock;
    this.log = options.log;
    this.log.debug({ config }, 'configuration (secrets redacted)');
    this.http = new TwinHttp({ maxConnections: config.twin.max_connections, maxWaitMs: config.twin.connection_wait_ms });
    this.twin = new TwinApi(config.twin, this.http, new TwinAuth(config.twin, this.http, this.clock, this.log), this.log);
    const dialer = options.role === 'dialer';
    this.gate = buildTrunkGate(config, dialer, this.clock, this.log);
    this.publishesTrunk = !dialer;
    this.drivers = buildPbxDrivers(config, dialer, this.log, this.clock, (call) => this.handle(call));
    this.asterisk = this.drivers.asterisk;
    this.freeswitch = this.drivers.freeswitch;
    const twilio = config.twilio;
    if (twilio?.public_url !== undefined && !dialer) this.twilio = this.createTwilio({ ...twilio, public_url: twilio.public_url });
    if (twilio) {
      // Followed by Twilio's callbacks when Twilio can reach this daemon (its public_url), else by reading the Calls API.
      const callbacks = this.twilio && twilio.outbound_status !== 'poll' ? this.twilio.outboundUrls : undefined;
      if (twilio.outbound_status === 'callbacks' && !callbacks) {
        this.log.warn('twilio.outbound_status is callbacks, but Twilio cannot call back without twilio.public_url: outbound calls are polled');
      }
      const twilioDialer = this.twilioDialer = new TwilioDialer(twilio, this.log, this.clock, callbacks);
      if (this.twilio && callbacks) this.twilio.onOutbound = (kind, params, res) => twilioDialer.onWebhook(kind, params, res);
    }
    this.outbound = new Outbound({ ...this.flowDeps(), dialers: { ...this.drivers, twilio: this.twilioDialer } });
    this.outbound.on('result', (result: OutboundResult) => this.journal?.done(result.pbx, result.id));
    if (!dialer) {
      const metrics = this.metrics = buildMetrics({
        activeCalls: () => this.live.size, gate: this.gate, drivers: this.drivers, twin: this.twin, twilioTwin: () => this.twilioTwin, twinHttp: this.http,
        callbacks: () => this.callbacks, httpServer: () => this.httpServer,
      });
      this.outbound.on('result', (result: OutboundResult) => metrics.recordOutbound(result));
      if (config.callbacks) this.callbacks = new Callbacks(config.callbacks, this.clock, this.log, (r) => metrics.recordCallback(r));
    }
    if (config.http && this.metrics) {
      this.httpServer = buildHttpServer(config.http, {
        config: () => this.config, placeCall: (request) => this.placeCall(request), readiness: () => this.readiness(), degraded: () => this.degraded(),
      }, { outbound: this.outbound, metrics: this.metrics, gate: this.gate, callbacks: this.callbacks }, this.log);
    }
    this.gate.on('change', (snapshot: TrunkSnapshot) => this.onTrunkChange(snapshot));
  }

  // ---- start ----

  /** Connects to each configured PBX; rejects only if a port (HTTP, FreeSWITCH's call socket) or the callback folder cannot be used. */
  async start(): Promise<void> {
    await this.gate.start?.();
    if (this.publishesTrunk) {
      const trunk = this.gate.snapshot();
      for (const driver of driversOf(this.drivers)) driver.publishTrunk(trunk);
    }
    await this.callbacks?.start().catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot use the callback folder ${this.config.callbacks?.dir}: ${err.code ?? err.message}`);
    });
    await this.httpServer?.listen();
    if (this.publishesTrunk) this.openJournal();
    await Promise.all([...driversOf(this.drivers).map((driver) => driver.start()), this.twilio?.start()]);
  }

  /**
   * Reads the calls earlier runs sent to Twin and never counted, and hands each PBX driver its own
   * to follow (the ones still going on) or report (the ones that ended while no run was up). A
   * journal that cannot be opened does not stop the product: it takes calls, and says so.
   */
  private openJournal(): void {
    const opened = openCallJournal(this.config.state.dir, this.clock, this.log);
    if ('problem' in opened) {
      this.journalProblem = opened.problem;
      return;
    }
    this.journal = opened.journal;
    const earlier = this.journal.earlier;
    if (earlier.length > 0) this.log.info({ calls: earlier.length }, 'calls sent to Twin by an earlier run and not yet counted: following them');
    const report = (call: JournalCall, end: EarlierCallEnd) => this.reportEarlier(call, end);
    for (const driver of driversOf(this.drivers)) driver.followEarlier(earlier.filter((c) => c.pbx === driver.pbx), report);
    this.twilio?.followEarlier(earlier.filter((c) => c.pbx === 'twilio' && c.direction === 'inbound'), report);
    const followed = (call: JournalCall) => this.driverOf(call.pbx) !== undefined || (call.pbx === 'twilio' && call.direction === 'inbound' && this.twilio !== undefined);
    for (const call of earlier.filter((c) => !followed(c))) {
      const detail = call.pbx === 'twilio' ? 'a Twilio call of an earlier run: it cannot be followed' : `${call.pbx} is no longer configured: the call cannot be followed`;
      report(call, { status: 'CONNECTED', endedBy: 'unknown', detail });
    }
  }

  /** The one outcome line of a call an earlier run sent to Twin and never counted. */
  private reportEarlier(call: JournalCall, end: EarlierCallEnd): void {
    if (!this.journal?.isEarlier(call.pbx, call.callId)) return; // counted meanwhile, or a flow of this run took it on
    const outcome = earlierCallOutcome(call, end);
    this.log.info({ outcome }, `call ${outcome.status.toLowerCase()}`);
    if (call.direction === 'outbound') {
      const result = { id: call.callId, to: call.dialed, from: call.caller, bot: call.bot, pbx: call.pbx, ...fromOutcome(outcome) };
      this.metrics?.recordOutbound(call.setupMs === undefined ? { ...result, setupMs: undefined } : result);
    } else {
      this.metrics?.recordInbound(outcome, { setupKnown: call.setupMs !== undefined });
    }
    this.emit('outcome', outcome);
    this.journal.done(call.pbx, call.callId);
  }

  // ---- serve: calls in and out ----

  /**
   * A call goes to its fallback at once, without a warm-up, while the product is stopping or the PBX
   * lacks the bot endpoint (no Twin session is opened for a bot leg that cannot be dialled).
   */
  private handle(call: AnsweredCall, twin = this.twin): void {
    this.journal?.claim(call.pbx, call.id); // an earlier run's call the PBX handed us again: this flow counts it
    const refusal = this.stopping ? 'the product is stopping' : this.driverOf(call.pbx)?.botEndpointMissing;
    const deps = { ...this.flowDeps(), twin };
    const flow = refusal ? runRefusedCall(call, deps, refusal) : runCallFlow(call, deps);
    this.track(flow.then((outcome) => this.report(outcome)));
    if (call.handoverDelayMs !== undefined) this.metrics?.recordHandover(call.pbx, call.handoverDelayMs);
  }

  private lastShedWarningAt = -Infinity;

  /** A caller the flow sent to the fallback for reaching us late: counted, and a warning at most every 10 s. */
  private onShed(call: AnsweredCall, delayMs: number): void {
    this.metrics?.recordShed(call.pbx);
    // The shipped dialplans skip us while we catch up.
    if (call.pbx !== 'twilio') this.drivers[call.pbx]?.markOverloaded(OVERLOAD_HOLD_MS);
    if (this.clock.now() - this.lastShedWarningAt < 10_000) return;
    this.lastShedWarningAt = this.clock.now();
    this.log.warn({ pbx: call.pbx, delayMs: Math.round(delayMs), boundMs: this.config.trunk.max_handover_delay_ms },
      'callers reach the product later than trunk.max_handover_delay_ms after the PBX hands them over: this box is over capacity; '
      + 'sending them to the fallback at once (see twin_connector_calls_shed_total)');
  }

  /** One log line per call: id, route, outcome, warm-up and setup times. */
  private report(outcome: CallOutcome): void {
    this.log.info({ outcome }, `call ${outcome.status.toLowerCase()}`);
    this.metrics?.recordInbound(outcome);
    this.emit('outcome', outcome);
    this.journal?.done(outcome.pbx, outcome.callId);
  }

  /** Places one outbound call now (warm-up, dial, connect); `result` settles when the call is over. */
  placeCall(request: CallRequest, id: string = randomUUID()): { id: string; result: Promise<OutboundResult> } {
    return { id, result: this.track(this.outbound.place(id, request)) };
  }

  /** A campaign over these rows, journalled in `journal`, with this daemon's trunk and PBXs. */
  campaign(rows: CampaignRow[], journal: Journal, limits: CampaignLimits): Campaign {
    return new Campaign(rows, journal, limits, {
      outbound: this.outbound, gate: this.gate, clock: this.clock, log: this.log, track: (work) => this.track(work),
    });
  }

  /** Tracks work that stop() must wait for: calls in progress, inbound or outbound. */
  track<T>(work: Promise<T>): Promise<T> {
    this.live.add(work);
    void work.finally(() => this.live.delete(work)).catch(() => {});
    return work;
  }

  get activeCalls(): number {
    return this.live.size;
  }

  private flowDeps(): FlowDeps {
    return {
      config: () => this.config, twin: this.twin, gate: this.gate, clock: this.clock, log: this.log, journal: this.journalHooks,
      onShed: (call, delayMs) => this.onShed(call, delayMs),
    };
  }

  /** The call flows' way to the journal, which is opened only at start (and never by a dialer). */
  private readonly journalHooks: NonNullable<FlowDeps['journal']> = {
    sending: (call) => this.journal?.sending(call),
    answered: (pbx, callId, setupMs) => this.journal?.answered(pbx, callId, setupMs),
  };

  private driverOf(pbx: AnsweredCall['pbx']): PbxDriver | undefined {
    return pbx === 'twilio' ? undefined : this.drivers[pbx];
  }

  /** Twilio numbers: their calls run the same flow, with warm-ups bounded under Twilio's 15 s webhook limit. */
  private createTwilio(cfg: InboundTwilioConfig): TwilioDriver {
    const boundMs = Math.min(this.config.twin.warmup_timeout_ms, cfg.warmup_timeout_ms);
    const twin = (this.twilioTwin = new TwinApi({ ...this.config.twin, warmup_timeout_ms: boundMs }, this.http, this.twin.auth, this.log));
    return new TwilioDriver(cfg, { log: this.log, config: () => this.config, onCall: (call) => this.handle(call, twin) });
  }

  private onTrunkChange(snapshot: TrunkSnapshot): void {
    if (snapshot.state !== 'open') this.log.warn({ trunk: snapshot }, `trunk to Twin is ${snapshot.state}`);
    else this.log.info({ trunk: snapshot }, 'trunk to Twin is open');
    for (const driver of driversOf(this.drivers)) driver.publishTrunk(snapshot);
    this.emit('trunk', snapshot);
  }

  // ---- readiness ----

  /** Why the product cannot take calls now; empty when it can (GET /readyz, GET /v1/status). */
  async readiness(): Promise<NotReady[]> {
    const problems = partsNotReady(this.stopping, driversOf(this.drivers), this.gate.snapshot());
    const login = await twinLoginProblem(this.twin);
    if (login) problems.push(login);
    this.logReadinessChange(problems);
    return problems;
  }

  private logReadinessChange(problems: NotReady[]): void {
    const reasons = problems.map((p) => p.reason).join(',');
    if (reasons === this.loggedReasons) return;
    this.loggedReasons = reasons;
    if (problems.length === 0) this.log.info('ready: can take calls again');
    else this.log.warn({ notReady: problems }, `not ready: ${reasons}`);
  }

  /** Ways the product works with less than usual but still takes calls (GET /readyz lists them; it stays 200). */
  degraded(): string[] {
    const cluster = this.gate.snapshot().cluster;
    return [...(cluster && !cluster.connected ? ['cluster_unreachable'] : []), ...(this.journalProblem ? ['call_journal_unavailable'] : [])];
  }

  // ---- reload ----

  /** Applies a reloaded config (SIGHUP); returns the warnings for what waits for a restart (see daemon/reload.ts). */
  reload(next: Config): string[] {
    const { config, needRestart } = reloadedConfig(this.config, next);
    this.config = config;
    this.gate.setLimits(this.config.trunk);
    this.log.level = this.config.log.level;
    const skipped = needRestart.map((key) => `${key} changed: takes effect after a restart`);
    for (const line of skipped) this.log.warn(line);
    this.log.info({ routes: this.config.routes.table.length, trunk: this.config.trunk }, 'config reloaded');
    return skipped;
  }

  // ---- stop ----

  /**
   * Graceful stop: new calls go to their fallback (UNAVAILABLE), the dialer API answers 503, live
   * calls go on for up to `timeoutMs` (shutdown.timeout_s); the ones left then are hung up.
   */
  stop(timeoutMs = this.config.shutdown.timeout_s * 1000): Promise<void> {
    this.stopped ??= this.stopGracefully(timeoutMs);
    return this.stopped;
  }

  /** During stop(): hang up the calls left now instead of waiting for the timeout. */
  hurry(): void {
    this.impatience.abort();
  }

  private async stopGracefully(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.httpServer?.drain();
    if (this.live.size > 0) this.log.info({ activeCalls: this.live.size, timeoutS: Math.round(timeoutMs / 1000) }, 'stopping: waiting for live calls to end');
    if (!(await this.waitForCalls(timeoutMs))) {
      this.log.warn({ activeCalls: this.live.size }, 'shutdown timeout: hanging up the calls still in progress');
      await Promise.all([...driversOf(this.drivers).map((driver) => driver.hangupAll()), this.twilio?.hangupAll(), this.twilioDialer?.hangupAll()]);
      // Their bot legs and bridges are being released now: let that finish (bounded) before the
      // PBX connections close, even in a hurry, or those legs would stay up in the PBX.
      await this.waitForCalls(10_000, false);
    }
    await this.gate.close();
    this.asterisk?.stop();
    await this.freeswitch?.stop();
    await this.twilio?.stop();
    await this.callbacks?.stop();
    await this.httpServer?.close();
    await this.http.close();
    this.journal?.close();
  }

  /** Resolves true when no call is left, false after `timeoutMs` (on the daemon's clock) or, if `hurryable`, on hurry(). */
  private async waitForCalls(timeoutMs: number, hurryable = true): Promise<boolean> {
    const timeout = new AbortController();
    const cut = hurryable ? AbortSignal.any([timeout.signal, this.impatience.signal]) : timeout.signal;
    const timedOut = this.clock.sleep(timeoutMs, cut).then(() => false);
    const drained = (async () => {
      while (this.live.size > 0) await Promise.allSettled([...this.live]);
      return true;
    })();
    const result = await Promise.race([drained, timedOut]);
    timeout.abort();
    return result;
  }
}
