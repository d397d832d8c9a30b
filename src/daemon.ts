/**
 * The running product: Twin's client, the trunk gate and the PBX driver, wired to the call flow.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { runCallFlow, type FlowDeps } from './core/call-flow.js';
import { Outbound, type OutboundResult } from './outbound/outbound.js';
import type { CallRequest } from './outbound/request.js';
import { Campaign, type CampaignLimits } from './outbound/campaign.js';
import type { CampaignRow } from './outbound/campaign-file.js';
import type { Journal } from './outbound/journal.js';
import { randomUUID } from 'node:crypto';
import { HttpServer } from './http/server.js';
import { TrunkGate, type TrunkSnapshot } from './core/trunk.js';
import type { AnsweredCall, CallOutcome } from './core/types.js';
import { TwinHttp } from './twin/http.js';
import { TwinAuth } from './twin/auth.js';
import { TwinApi } from './twin/warmup.js';
import { AsteriskDriver } from './pbx/asterisk/driver.js';
import { FreeSwitchDriver } from './pbx/freeswitch/driver.js';

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
  readonly gate: TrunkGate;
  readonly twin: TwinApi;
  readonly asterisk?: AsteriskDriver;
  readonly freeswitch?: FreeSwitchDriver;
  readonly outbound: Outbound;
  /** The HTTP port (dialer API), when configured and running as the daemon. */
  readonly httpServer?: HttpServer;
  private readonly publishesTrunk: boolean;
  private readonly http: TwinHttp;
  private readonly log: Logger;
  private readonly live = new Set<Promise<unknown>>();

  constructor(private config: Config, options: DaemonOptions) {
    super();
    this.clock = options.clock ?? systemClock;
    this.log = options.log;
    this.http = new TwinHttp(config.twin.max_connections);
    this.twin = new TwinApi(config.twin, this.http, new TwinAuth(config.twin, this.http, this.clock, this.log), this.log);
    this.gate = new TrunkGate(config.trunk, this.clock);
    const dialer = options.role === 'dialer';
    this.publishesTrunk = !dialer;
    if (config.asterisk) {
      const cfg = dialer ? { ...config.asterisk, app: `${config.asterisk.app}-dialer-${process.pid}` } : config.asterisk;
      this.asterisk = new AsteriskDriver(cfg, this.log, (call) => this.handle(call));
    }
    if (config.freeswitch) {
      const cfg = dialer ? { ...config.freeswitch, listen_port: 0 } : config.freeswitch;
      this.freeswitch = new FreeSwitchDriver(cfg, this.log, (call) => this.handle(call));
    }
    this.outbound = new Outbound({
      ...this.flowDeps(), dialers: { asterisk: this.asterisk, freeswitch: this.freeswitch },
    });
    if (config.http && !dialer) {
      this.httpServer = new HttpServer(config.http, {
        config: () => this.config,
        placeCall: (request) => this.placeCall(request),
        onProgress: (listener) => this.outbound.on('progress', listener),
      }, this.log);
    }
    this.gate.on('change', (snapshot: TrunkSnapshot) => this.onTrunkChange(snapshot));
  }

  /** Connects to each configured PBX; rejects only if FreeSWITCH's call socket port cannot be used. */
  async start(): Promise<void> {
    if (this.publishesTrunk) {
      const trunk = this.gate.snapshot();
      this.asterisk?.publishTrunk(trunk);
      this.freeswitch?.publishTrunk(trunk);
    }
    await this.httpServer?.listen();
    await Promise.all([this.asterisk?.start(), this.freeswitch?.start()]);
  }

  /** Stops taking events and waits for the calls in progress to leave. */
  async stop(): Promise<void> {
    await this.httpServer?.close(); // no new calls from the dialer API
    await Promise.allSettled([...this.live]);
    this.asterisk?.stop();
    await this.freeswitch?.stop();
    await this.http.close();
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

  private flowDeps(): FlowDeps {
    return { config: () => this.config, twin: this.twin, gate: this.gate, clock: this.clock, log: this.log };
  }

  private handle(call: AnsweredCall): void {
    this.track(runCallFlow(call, this.flowDeps()).then((outcome) => this.report(outcome)));
  }

  private report(outcome: CallOutcome): void {
    this.log.info({ outcome }, `call ${outcome.status.toLowerCase()}`);
    this.emit('outcome', outcome);
  }

  private onTrunkChange(snapshot: TrunkSnapshot): void {
    if (snapshot.state !== 'open') this.log.warn({ trunk: snapshot }, `trunk to Twin is ${snapshot.state}`);
    else this.log.info({ trunk: snapshot }, 'trunk to Twin is open');
    this.asterisk?.publishTrunk(snapshot);
    this.freeswitch?.publishTrunk(snapshot);
    this.emit('trunk', snapshot);
  }
}
