/**
 * The running product: Twin's client, the trunk gate and the PBX driver, wired to the call flow.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { runCallFlow, runRefusedCall, type FlowDeps } from './core/call-flow.js';
import { Callbacks } from './callbacks/callbacks.js';
import { Metrics } from './http/metrics.js';
import { fromOutcome, Outbound, type OutboundResult } from './outbound/outbound.js';
import type { CallRequest } from './outbound/request.js';
import { Campaign, type CampaignLimits } from './outbound/campaign.js';
import type { CampaignRow } from './outbound/campaign-file.js';
import type { Journal } from './outbound/journal.js';
import { randomUUID } from 'node:crypto';
import { HttpServer, type NotReady } from './http/server.js';
import { TrunkGate, type Gate, type TrunkSnapshot } from './core/trunk.js';
import { ClusterGate } from './cluster/cluster-gate.js';
import { RedisBudget } from './cluster/redis-budget.js';
import type { AnsweredCall, CallOutcome } from './core/types.js';
import { TwinHttp } from './twin/http.js';
import { TwinAuth } from './twin/auth.js';
import { TwinApi } from './twin/warmup.js';
import { AsteriskDriver } from './pbx/asterisk/driver.js';
import { FreeSwitchDriver } from './pbx/freeswitch/driver.js';
import { TwilioDriver } from './pbx/twilio/driver.js';
import { CallJournal, type JournalCall } from './core/call-journal.js';
import type { EarlierCallEnd } from './pbx/earlier-calls.js';
import { JournalLockedError } from './outbound/journal-lock.js';

const READY_LOGIN_WAIT_MS = 1000;

export interface DaemonOptions {
  clock?: Clock;
  log: Logger;
  /**
   * 'dialer' runs beside a daemon for the CLI's call and campaign: its own Stasis app name and a
   * free call-socket port (originate names both), and it leaves the trunk state to the daemon.
   */
  role?: 'daemon' | 'dialer';
}

/** Emits 'outcome' (CallOutcome) when a call has left the product, and 'trunk' (TrunkSnapshot). */
export class Daemon extends EventEmitter {
  readonly clock: Clock;
  readonly gate: Gate;
  readonly twin: TwinApi;
  readonly asterisk?: AsteriskDriver;
  readonly freeswitch?: FreeSwitchDriver;
  /** Calls to Twilio numbers (the daemon's only: a dialer takes no incoming calls). */
  readonly twilio?: TwilioDriver;
  /** Twilio calls' warm-ups: same login and connections, bounded under Twilio's webhook limit. */
  private twilioTwin?: TwinApi;
  readonly outbound: Outbound;
  /** The HTTP port (health, metrics, trunk, callbacks, dialer API), when configured and running as the daemon. */
  readonly httpServer?: HttpServer;
  readonly metrics?: Metrics;
  readonly callbacks?: Callbacks;
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
    this.gate = this.createGate(config, dialer);
    this.publishesTrunk = !dialer;
    if (config.asterisk) {
      const cfg = dialer ? { ...config.asterisk, app: `${config.asterisk.app}-dialer-${process.pid}` } : config.asterisk;
      this.asterisk = new AsteriskDriver(cfg, this.log, (call) => this.handle(call), this.clock);
    }
    if (config.freeswitch) {
      const cfg = dialer ? { ...config.freeswitch, listen_port: 0 } : config.freeswitch;
      this.freeswitch = new FreeSwitchDriver(cfg, this.log, (call) => this.handle(call), this.clock);
    }
    if (config.twilio && !dialer) this.twilio = this.createTwilio(config.twilio);
    this.outbound = new Outbound({
      ...this.flowDeps(), dialers: { asterisk: this.asterisk, freeswitch: this.freeswitch },
    });
    this.outbound.on('result', (result: OutboundResult) => this.journal?.done(result.pbx, result.id));
    if (!dialer) {
      const metrics = this.metrics = this.createMetrics();
      this.outbound.on('result', (result: OutboundResult) => metrics.recordOutbound(result));
      if (config.callbacks) this.callbacks = new Callbacks(config.callbacks, this.clock, this.log, (r) => metrics.recordCallback(r));
    }
    if (config.http && this.metrics) this.httpServer = this.createHttpServer(config.http, this.metrics);
    this.gate.on('change', (snapshot: TrunkSnapshot) => this.onTrunkChange(snapshot));
  }

  /** Connects to each configured PBX; rejects only if a port (HTTP, FreeSWITCH's call socket) or the callback folder cannot be used. */
  async start(): Promise<void> {
    await this.gate.start?.();
    if (this.publishesTrunk) {
      const trunk = this.gate.snapshot();
      this.asterisk?.publishTrunk(trunk);
      this.freeswitch?.publishTrunk(trunk);
    }
    await this.callbacks?.start().catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot use the callback folder ${this.config.callbacks?.dir}: ${err.code ?? err.message}`);
    });
    await this.httpServer?.listen();
    if (this.publishesTrunk) this.openJournal();
    await Promise.all([this.asterisk?.start(), this.freeswitch?.start(), this.twilio?.start()]);
  }

  /**
   * Reads the calls earlier runs sent to Twin and never counted, and hands each PBX driver its own
   * to follow (the ones still going on) or report (the ones that ended while no run was up). A
   * journal that cannot be opened does not stop the product: it takes calls, and says so.
   */
  private openJournal(): void {
    try {
      this.journal = new CallJournal(this.config.state.dir, this.clock, this.log);
    } catch (err) {
      const why = err instanceof JournalLockedError
        ? `another twin-connector (pid ${err.pid ?? 'unknown'}) uses ${this.config.state.dir}`
        : `${(err as NodeJS.ErrnoException).code ?? (err as Error).message} on ${this.config.state.dir}`;
      this.journalProblem = `cannot keep the call journal: ${why}`;
      this.log.error({ stateDir: this.config.state.dir }, `${this.journalProblem}; calls that outlive a restart of the product will not be counted`);
      return;
    }
    const earlier = this.journal.earlier;
    if (earlier.length > 0) this.log.info({ calls: earlier.length }, 'calls sent to Twin by an earlier run and not yet counted: following them');
    const report = (call: JournalCall, end: EarlierCallEnd) => this.reportEarlier(call, end);
    for (const driver of [this.asterisk, this.freeswitch]) driver?.followEarlier(earlier.filter((c) => c.pbx === driver.pbx), report);
    for (const call of earlier.filter((c) => !this.driverOf(c.pbx))) {
      const detail = call.pbx === 'twilio' ? 'a Twilio call of an earlier run: it cannot be followed' : `${call.pbx} is no longer configured: the call cannot be followed`;
      report(call, { status: 'CONNECTED', endedBy: 'unknown', detail });
    }
  }

  /**
   * The one outcome line of a call an earlier run sent to Twin and never counted: what the journal
   * knows (numbers, route, bot, Twin id, warm-up) and what the PBX told this run about its end.
   */
  private reportEarlier(call: JournalCall, end: EarlierCallEnd): void {
    if (!this.journal?.isEarlier(call.pbx, call.callId)) return; // counted meanwhile, or a flow of this run took it on
    const outcome: CallOutcome = {
      callId: call.callId, pbx: call.pbx, direction: call.direction, caller: call.caller, dialed: call.dialed,
      route: call.route, bot: call.bot, status: end.status, twinId: call.twinId,
      ...(call.warmupMs !== undefined ? { warmupMs: call.warmupMs } : {}),
      setupMs: call.setupMs ?? 0, detail: end.detail,
      ...(end.endedBy !== undefined ? { endedBy: end.endedBy } : {}),
      ...(end.transferTarget !== undefined ? { transferTarget: end.transferTarget } : {}),
    };
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

  /**
   * Graceful stop: new calls go to their fallback (UNAVAILABLE), the dialer API answers 503, live
   * calls go on for up to `timeoutMs` (shutdown.timeout_s); the ones left then are hung up.
   */
  stop(timeoutMs = this.config.shutdown.timeout_s * 1000): Promise<void> {
    this.stopped ??= this.stopGracefully(timeoutMs);
    return this.stopped;
  }

  private async stopGracefully(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.httpServer?.drain();
    if (this.live.size > 0) this.log.info({ activeCalls: this.live.size, timeoutS: Math.round(timeoutMs / 1000) }, 'stopping: waiting for live calls to end');
    if (!(await this.waitForCalls(timeoutMs))) {
      this.log.warn({ activeCalls: this.live.size }, 'shutdown timeout: hanging up the calls still in progress');
      await Promise.all([this.asterisk?.hangupAll(), this.freeswitch?.hangupAll()]);
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

  /** During stop(): hang up the calls left now instead of waiting for the timeout. */
  hurry(): void {
    this.impatience.abort();
  }

  /**
   * Applies a reloaded config (SIGHUP): routes, trunk limits, session, outbound, SIP headers,
   * callback URLs, log level and the API token take effect for the next call. Connection settings
   * (PBX, Twin's addresses and login, HTTP address, callbacks, state folder) need a restart: kept, with a warning.
   */
  reload(next: Config): string[] {
    const { sip, callback_urls, ...twinConnection } = next.twin;
    const { sip: _sip, callback_urls: _urls, ...oldTwinConnection } = this.config.twin;
    const differs = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
    const needRestart: string[] = (['asterisk', 'freeswitch', 'twilio', 'http', 'callbacks', 'cluster', 'state'] as const)
      .filter((key) => differs(withoutToken(key, next[key]), withoutToken(key, this.config[key])));
    if (differs(twinConnection, oldTwinConnection)) needRestart.push('twin');
    this.config = {
      ...next,
      twin: { ...this.config.twin, sip, callback_urls },
      asterisk: this.config.asterisk, freeswitch: this.config.freeswitch, twilio: this.config.twilio, callbacks: this.config.callbacks, cluster: this.config.cluster,
      state: this.config.state,
      http: this.config.http && next.http ? { ...this.config.http, api_token: next.http.api_token } : this.config.http,
    };
    this.gate.setLimits(this.config.trunk);
    this.log.level = this.config.log.level;
    const skipped = needRestart.map((key) => `${key} changed: takes effect after a restart`);
    for (const line of skipped) this.log.warn(line);
    this.log.info({ routes: this.config.routes.table.length, trunk: this.config.trunk }, 'config reloaded');
    return skipped;
  }

  /** Why the product cannot take calls now; empty when it can (GET /readyz, GET /v1/status). */
  async readiness(): Promise<NotReady[]> {
    const problems: NotReady[] = [];
    if (this.stopping) problems.push({ reason: 'stopping', detail: 'the product is stopping' });
    for (const driver of [this.asterisk, this.freeswitch]) {
      if (driver && driver.state !== 'connected') {
        problems.push({ reason: `pbx_down:${driver.pbx}`, detail: `${driver.pbx}: ${driver.state}${driver.lastProblem ? ` (${driver.lastProblem})` : ''}` });
      }
      if (driver?.botEndpointMissing) problems.push({ reason: `bot_endpoint_missing:${driver.pbx}`, detail: driver.botEndpointMissing });
    }
    const trunk = this.gate.snapshot();
    if (trunk.state === 'throttled') {
      const until = new Date(trunk.cooldownUntil ?? 0).toISOString();
      const seenBy = trunk.cluster?.failureNode ? `node ${trunk.cluster.failureNode}: ` : '';
      problems.push({ reason: 'twin_trunk_throttled', detail: `Twin trunk throttled until ${until} (${seenBy}${trunk.lastFailure ?? 'failure'})` });
    }
    const login = await this.loginProblem();
    if (login) problems.push(login);
    this.logReadinessChange(problems);
    return problems;
  }

  /**
   * A probe must answer fast: a login still running after a second counts as Twin not answering.
   * TwinAuth keeps a token for its lifetime and backs off after a failed login, so probes cannot
   * log in more often than calls would.
   */
  private async loginProblem(): Promise<NotReady | undefined> {
    const login = this.twin.auth.token().then(
      () => undefined,
      (err: Error): NotReady => ({ reason: 'twin_login_failed', detail: err.message }),
    );
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<NotReady>((resolve) => {
      timer = setTimeout(() => resolve({ reason: 'twin_login_slow', detail: `Twin IAM did not answer within ${READY_LOGIN_WAIT_MS} ms` }), READY_LOGIN_WAIT_MS);
    });
    try {
      return await Promise.race([login, slow]);
    } finally {
      clearTimeout(timer);
    }
  }

  private logReadinessChange(problems: NotReady[]): void {
    const reasons = problems.map((p) => p.reason).join(',');
    if (reasons === this.loggedReasons) return;
    this.loggedReasons = reasons;
    if (problems.length === 0) this.log.info('ready: can take calls again');
    else this.log.warn({ notReady: problems }, `not ready: ${reasons}`);
  }

  get activeCalls(): number {
    return this.live.size;
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

  /** Ways the product works with less than usual but still takes calls (GET /readyz lists them; it stays 200). */
  degraded(): string[] {
    const cluster = this.gate.snapshot().cluster;
    return [...(cluster && !cluster.connected ? ['cluster_unreachable'] : []), ...(this.journalProblem ? ['call_journal_unavailable'] : [])];
  }

  /**
   * This node's own gate, or with `cluster:` one sharing the budget through Redis. A dialer beside
   * the daemon (CLI call, campaign) is a node of its own: a sync must never drop the daemon's slots.
   */
  private createGate(config: Config, dialer: boolean): Gate {
    if (!config.cluster) return new TrunkGate(config.trunk, this.clock);
    const cluster = dialer ? { ...config.cluster, node: `${config.cluster.node}.dialer.${process.pid}` } : config.cluster;
    return new ClusterGate(config.trunk, cluster, new RedisBudget(cluster, this.log), this.clock, this.log);
  }

  private flowDeps(): FlowDeps {
    return { config: () => this.config, twin: this.twin, gate: this.gate, clock: this.clock, log: this.log, journal: this.journalHooks };
  }

  /** The call flows' way to the journal, which is opened only at start (and never by a dialer). */
  private readonly journalHooks: NonNullable<FlowDeps['journal']> = {
    sending: (call) => this.journal?.sending(call),
    answered: (pbx, callId, setupMs) => this.journal?.answered(pbx, callId, setupMs),
  };

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
  }

  private driverOf(pbx: AnsweredCall['pbx']): AsteriskDriver | FreeSwitchDriver | undefined {
    return pbx === 'asterisk' ? this.asterisk : pbx === 'freeswitch' ? this.freeswitch : undefined;
  }

  /** Twilio numbers: their calls run the same flow, with warm-ups bounded under Twilio's 15 s webhook limit. */
  private createTwilio(cfg: NonNullable<Config['twilio']>): TwilioDriver {
    const boundMs = Math.min(this.config.twin.warmup_timeout_ms, cfg.warmup_timeout_ms);
    const twin = (this.twilioTwin = new TwinApi({ ...this.config.twin, warmup_timeout_ms: boundMs }, this.http, this.twin.auth, this.log));
    return new TwilioDriver(cfg, { log: this.log, config: () => this.config, onCall: (call) => this.handle(call, twin) });
  }

  /** One log line per call: id, route, outcome, warm-up and setup times. */
  private report(outcome: CallOutcome): void {
    this.log.info({ outcome }, `call ${outcome.status.toLowerCase()}`);
    this.metrics?.recordInbound(outcome);
    this.emit('outcome', outcome);
    this.journal?.done(outcome.pbx, outcome.callId);
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

  private createMetrics(): Metrics {
    const auth = this.twin.auth;
    return new Metrics({
      activeCalls: () => this.live.size,
      trunk: () => this.gate.snapshot(),
      clusterFallbacks: () => (this.gate instanceof ClusterGate ? this.gate.fallbacks : undefined),
      pbxConnections: () => [this.asterisk, this.freeswitch].flatMap((d) => (d ? [{ pbx: d.pbx, state: d.state }] : [])),
      logins: () => ({ ok: auth.logins - auth.loginFailures, failed: auth.loginFailures }),
      warmupRequests: () => this.twin.requests + (this.twilioTwin?.requests ?? 0),
      twinConnections: () => ({ inFlight: this.http.inFlight, waiting: this.http.waiting }),
      callbacks: () => ({ pending: this.callbacks?.pending ?? 0 }),
      callsNotTaken: () => (this.freeswitch ? [{ pbx: 'freeswitch', count: this.freeswitch.callsNotTaken }] : []),
      httpConnections: () => ({ open: this.httpServer?.openConnections ?? 0, refused: this.httpServer?.refusedConnections ?? 0 }),
    });
  }

  private createHttpServer(cfg: NonNullable<Config['http']>, metrics: Metrics): HttpServer {
    const callbacks = this.callbacks;
    return new HttpServer(cfg, {
      config: () => this.config,
      placeCall: (request) => this.placeCall(request),
      onProgress: (listener) => this.outbound.on('progress', listener),
      metrics: () => metrics.text(),
      readiness: () => this.readiness(),
      degraded: () => this.degraded(),
      trunk: () => this.gate.snapshot(),
      receiveCallback: callbacks ? (raw) => callbacks.receive(raw) : undefined,
    }, this.log);
  }

  private onTrunkChange(snapshot: TrunkSnapshot): void {
    if (snapshot.state !== 'open') this.log.warn({ trunk: snapshot }, `trunk to Twin is ${snapshot.state}`);
    else this.log.info({ trunk: snapshot }, 'trunk to Twin is open');
    this.asterisk?.publishTrunk(snapshot);
    this.freeswitch?.publishTrunk(snapshot);
    this.emit('trunk', snapshot);
  }
}

/** The API token is reloadable; the rest of the http section is not. */
function withoutToken(key: string, section: unknown): unknown {
  if (key !== 'http' || section === undefined) return section;
  const { api_token: _token, ...rest } = section as { api_token?: string };
  return rest;
}
