/**
 * FreeSWITCH driver: a server for the dialplan's `socket <host>:<port> async full` (one TCP
 * connection per call, each an AnsweredCall for the call flow), and one inbound ESL connection
 * (`event_socket.conf.xml`'s address and password) that publishes the trunk state as a global
 * variable and comes back with backoff when lost.
 */
import type { FreeswitchConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { TrunkSnapshot } from '../../core/trunk.js';
import { Backoff, LatestValuePublisher, TrunkAnnouncer, type ConnectionState } from '../shared.js';
import { randomUUID } from 'node:crypto';
import type { DialRequest, DialResult, PbxDialer } from '../../core/types.js';
import { causeCode } from '../../core/q850.js';
import { CallSocketServer, EslControl, EslError, type CallSocket, type EslEvent } from './esl.js';
import { allowedPeers } from './peers.js';
import { failureFromCauseName, FsCall } from './fs-call.js';
import type { TransferVerdict } from './transfer.js';
import { systemClock, type Clock } from '../../clock.js';
import { BOT_ENDPOINT_RECHECK_MS, BotEndpointWatch } from '../bot-endpoint.js';
import { freeswitchBotEndpoint } from './bot-endpoint.js';
import type { JournalCall } from '../../core/call-journal.js';
import type { EarlierCallReport } from '../earlier-calls.js';
import { EarlierFsCalls } from './earlier.js';

export type FsCallHandler = (call: FsCall) => void;

/** The shipped context `socket` returns into (dialplan/freeswitch/twin-after-socket.xml). */
const AFTER_SOCKET_CONTEXT = 'twin-after-socket';

export class FreeSwitchDriver implements PbxDialer {
  readonly pbx = 'freeswitch' as const;
  private readonly server: CallSocketServer;
  private control?: EslControl;
  private readonly backoff = new Backoff();
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly trunk: LatestValuePublisher;
  private readonly calls = new Set<FsCall>();
  /** Outbound calls ringing: origination uuid → who waits for its call socket. */
  private readonly dials = new Map<string, (result: DialResult) => void>();
  /** Calls handed back or over to FreeSWITCH (socket closed), by uuid, followed until their end is reported. */
  private readonly released = new Map<string, FsCall>();
  /** Whether FreeSWITCH's twin-after-socket has `bot_failed` (issue 20's), where a handed-back caller goes when the bot fails. */
  private handBackReady = false;
  private dialplanTimer?: NodeJS.Timeout;
  /** Calls the dialplan reported it could not hand us (its `socket` failed); shown in the metrics. */
  callsNotTaken = 0;
  /** State of the inbound ESL connection (the outbound socket server does not depend on it). */
  state: ConnectionState = 'connecting';
  lastProblem?: string;
  /** Whether FreeSWITCH has the bot endpoint's sofia gateway: checked at each ESL connection and every minute. */
  readonly botEndpoint: BotEndpointWatch;
  /** Calls an earlier run sent to Twin and never counted, followed over the inbound connection (earlier.ts). */
  private earlier = new EarlierFsCalls();

  /** What the dialplan is told of the trunk (twin_trunk). */
  private readonly announcer: TrunkAnnouncer;

  constructor(
    readonly cfg: FreeswitchConfig, private readonly log: Logger, private readonly onCall: FsCallHandler, clock: Clock = systemClock,
  ) {
    this.botEndpoint = new BotEndpointWatch(() => freeswitchBotEndpoint(cfg.bot_endpoint, (command) => this.api(command)), log, clock);
    this.server = new CallSocketServer((socket, ready) => this.accept(socket, ready), {
      timeoutMs: cfg.command_timeout_ms, connectTimeoutMs: cfg.connect_timeout_ms, log,
    });
    this.trunk = new LatestValuePublisher(
      (value) => this.control!.api(`global_setvar ${cfg.trunk_variable}=${value}`),
      () => this.control !== undefined && this.state === 'connected',
      log, 'the trunk state variable',
    );
    this.announcer = new TrunkAnnouncer((word) => this.trunk.set(word), clock);
  }

  get activeCalls(): number {
    return this.calls.size + this.released.size;
  }

  get listenPort(): number {
    return this.server.port;
  }

  /** Why calls cannot be put through to the bot now (FreeSWITCH lacks its gateway); undefined when they can. */
  get botEndpointMissing(): string | undefined {
    return this.botEndpoint.missing;
  }

  /** An API command on the inbound connection; rejects while it is down. */
  private api(command: string): Promise<string> {
    if (!this.control || this.state !== 'connected') return Promise.reject(new EslError('FreeSWITCH ESL is not connected'));
    return this.control.api(command);
  }

  /** Before start(): the calls an earlier run sent to Twin through this FreeSWITCH and never counted (call journal). */
  followEarlier(calls: readonly JournalCall[], report: EarlierCallReport): void {
    this.earlier = new EarlierFsCalls(calls, report);
  }

  /** Listens for calls (rejects if the port cannot be used), then makes one attempt at the inbound connection. */
  async start(): Promise<void> {
    this.stopped = false;
    const peers = await allowedPeers(this.cfg.allowed_peers, this.cfg.esl_host).catch((err: Error) => {
      throw new EslError(`cannot resolve freeswitch.esl_host for the call socket's allow-list (${err.message}): set freeswitch.allowed_peers`);
    });
    await this.server.listen(this.cfg.listen_host, this.cfg.listen_port, peers);
    this.botEndpoint.start();
    this.log.info({ listen: `${this.cfg.listen_host}:${this.server.port}`, allowedPeers: peers.entries }, 'waiting for calls from FreeSWITCH (dialplan socket)');
    await this.connectControl();
  }

  /** Stops taking calls: FreeSWITCH's `socket` then fails and the dialplan goes on to its fallback. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.botEndpoint.stop();
    clearInterval(this.dialplanTimer);
    clearTimeout(this.retryTimer);
    await this.cancelDials(); // before the connection goes
    this.control?.close();
    await this.server.close();
  }

  /** Hangs up every call still with us (shutdown timeout). */
  async hangupAll(): Promise<void> {
    await this.cancelDials();
    await Promise.allSettled([...this.calls].map((call) => call.leave({ action: 'hangup', cause: 16 }, 'ERROR')));
    // Calls handed to FreeSWITCH: over the inbound connection, as their sockets are closed. The kill
    // goes out with the status, not after its answer: a status that gets none must not keep the call
    // up. FreeSWITCH runs a connection's commands in order, so the status is set first. A caller the
    // bot handed to a person is no longer Twin's call: we stop following it, and leave it be.
    await Promise.allSettled([...this.released.values()].map(async (call) => {
      if (call.isTransferred) return this.endReleased(call.id, 'caller');
      const control = this.control;
      const commands = control ? [`uuid_setvar ${call.id} TWIN_STATUS ERROR`, `uuid_kill ${call.id} NORMAL_CLEARING`].map((c) => control.api(c)) : [];
      await Promise.allSettled(commands);
      this.endReleased(call.id, 'caller');
    }));
  }

  /** Outbound calls still ringing: the subscriber's phone stops ringing, the dial fails. */
  private async cancelDials(): Promise<void> {
    const ringing = [...this.dials.keys()];
    for (const id of ringing) this.settleDial(id, { kind: 'failed', reason: 'error', detail: 'the product is stopping' });
    await Promise.all(ringing.map((id) => this.control?.api(`uuid_kill ${id}`).catch(() => {})));
  }

  publishTrunk(trunk: TrunkSnapshot): void {
    this.announcer.set(trunk);
  }

  /** The product shed a caller it took too late: twin_trunk=OVERLOADED for `holdMs` (twin-bot-overloaded). */
  markOverloaded(holdMs: number): void {
    this.announcer.markOverloaded(holdMs);
  }

  /**
   * `bgapi originate … '&socket(<us> async full)'` on the inbound connection: answered, the channel
   * connects to our call socket like a dialplan call; failed, the job's body names the cause
   * (`-ERR USER_BUSY`). The job ends only after the answer (fixture d2), so it is bounded by the
   * ring time plus a margin.
   */
  originate(request: DialRequest): Promise<DialResult> {
    const control = this.control;
    if (!control) {
      return Promise.resolve({ kind: 'failed', reason: 'error', detail: `FreeSWITCH ESL is not connected${this.lastProblem ? ` (${this.lastProblem})` : ''}` });
    }
    const result = new Promise<DialResult>((settle) => this.dials.set(request.id, settle));
    const jobTimeoutMs = (request.ringTimeoutS + 10) * 1000;
    control.bgapi(this.originateCommand(request), randomUUID(), jobTimeoutMs).then(
      (body) => this.onOriginateJob(request.id, body.trim()),
      (err: Error) => this.settleDial(request.id, { kind: 'failed', reason: 'error', detail: err.message }),
    );
    return result;
  }

  private originateCommand(request: DialRequest): string {
    const vars = [
      `origination_uuid=${request.id}`, `origination_caller_id_number=${request.from}`, `origination_caller_id_name=${request.from}`,
      `originate_timeout=${request.ringTimeoutS}`, 'twin_direction=outbound',
    ].join(',');
    const host = this.cfg.originate_socket_host ?? (['0.0.0.0', '::'].includes(this.cfg.listen_host) ? '127.0.0.1' : this.cfg.listen_host);
    // The API splits its arguments on spaces outside single quotes: unquoted, FreeSWITCH would run
    // `socket(host:port` in static mode (recording s8-outbound-static-socket).
    return `originate {${vars}}${this.cfg.outbound_dial.replace('{number}', request.to)} '&socket(${host}:${this.listenPort} async full)'`;
  }

  private onOriginateJob(id: string, body: string): void {
    if (!this.dials.has(id)) return;
    if (!body.startsWith('+OK')) {
      const cause = body.replace(/^-ERR\s*/, '').split(/\s/)[0] ?? '';
      this.settleDial(id, { kind: 'failed', reason: failureFromCauseName(cause), cause: causeCode(cause), detail: cause || body.slice(0, 80) });
      return;
    }
    // Answered: its call socket normally connects within milliseconds.
    setTimeout(() => {
      if (!this.dials.has(id)) return;
      this.settleDial(id, { kind: 'failed', reason: 'error', detail: 'answered, but its call socket never reached us' });
      void this.control?.api(`uuid_kill ${id}`).catch(() => {});
    }, this.cfg.command_timeout_ms).unref();
  }

  private settleDial(id: string, result: DialResult): void {
    const settle = this.dials.get(id);
    this.dials.delete(id);
    settle?.(result);
  }

  private accept(socket: CallSocket, ready: boolean): void {
    if (this.stopped) return socket.close();
    const call = new FsCall(socket, this.cfg, this.log, {
      canFollow: () => this.control !== undefined && this.state === 'connected',
      canHandBack: () => this.handBackReady,
      follow: (followed) => this.released.set(followed.id, followed),
      unfollow: (followed) => { if (this.released.get(followed.id) === followed) this.released.delete(followed.id); },
      api: (command) => this.api(command),
    });
    // The caller hung up while the socket was being set up: the flow reports it as abandoned.
    if (!ready) call.goneBeforeSetup();
    if (!socket.isEnded) {
      this.calls.add(call);
      socket.on('end', () => this.calls.delete(call));
    }
    if (this.dials.has(call.id)) this.settleDial(call.id, { kind: 'answered', call });
    else this.onCall(call);
  }

  private async connectControl(): Promise<void> {
    if (this.stopped) return;
    const { esl_host: host, esl_port: port, esl_password: password, command_timeout_ms: timeout } = this.cfg;
    try {
      const control = await EslControl.connect(host, port, password, timeout);
      if (this.stopped) return control.close();
      this.control = control;
      this.state = 'connected';
      this.backoff.reset();
      this.lastProblem = undefined;
      this.log.info({ esl: `${host}:${port}` }, 'connected to FreeSWITCH ESL');
      control.on('end', () => this.retryLater('FreeSWITCH ESL connection lost'));
      control.on('not-taken', (uuid?: string, why?: 'caller-left-first') => {
        this.callsNotTaken++;
        if (why === 'caller-left-first') this.log.info({ callId: uuid }, 'a caller hung up before FreeSWITCH reached the product\'s socket');
        else this.log.warn({ callId: uuid }, 'FreeSWITCH could not hand a call to the product; its dialplan sent it to the fallback');
      });
      control.on('bot-hangup', (uuid: string) => {
        this.endReleased(uuid, 'bot');
        this.earlier.onBotHangup(uuid);
      });
      control.on('hangup-complete', (uuid: string, event: EslEvent) => {
        this.endReleased(uuid, 'caller', event);
        this.earlier.onHangupComplete(uuid, event);
      });
      control.on('bridge', (uuid: string, event: EslEvent) => this.released.get(uuid)?.onFollowedBridge(event));
      control.on('bot-failed', (uuid: string, event: EslEvent) => {
        this.released.get(uuid)?.onFollowedBotFailed(event);
        this.released.delete(uuid); // the dialplan's fallback has the caller
        this.earlier.onBotFailed(uuid, event);
      });
      control.on('transfer', (uuid: string, verdict: TransferVerdict, event: EslEvent) => {
        this.onReleasedTransfer(uuid, verdict, event);
        this.earlier.onTransfer(uuid, verdict, event);
      });
      await this.trunk.flush();
      await Promise.all([this.botEndpoint.check(true), this.checkHandBack(true)]);
      await this.settleReleasedGoneMeanwhile(control);
      await this.earlier.check((command) => control.api(command), this.log);
    } catch (err) {
      this.retryLater((err as Error).message);
    }
  }

  /**
   * Whether twin-after-socket has issue 20's `bot_failed` extension (`xml_locate` prints the
   * context's XML). Without it a handed-back caller whose bot leg fails would be hung up (no route):
   * calls then keep their socket and the bridge goes over it, as before. Asked at each connection
   * and every minute, like the gateway.
   */
  private async checkHandBack(atConnect: boolean): Promise<void> {
    let ready: boolean;
    try {
      ready = /expression="\^bot_failed\$"/.test(await this.api(`xml_locate dialplan context name ${AFTER_SOCKET_CONTEXT}`));
    } catch {
      return; // cannot ask just now: the last answer stands
    }
    if (!ready && (atConnect || this.handBackReady)) {
      this.log.error(`FreeSWITCH's dialplan context ${AFTER_SOCKET_CONTEXT} has no extension "bot_failed": install the shipped `
        + 'dialplan/freeswitch/twin-after-socket.xml and reloadxml. Until then the bot leg is bridged over each call\'s socket');
    } else if (ready && !this.handBackReady && !atConnect) {
      this.log.info(`FreeSWITCH's ${AFTER_SOCKET_CONTEXT} has "bot_failed" now: callers are handed back to bridge the bot`);
    }
    this.handBackReady = ready;
    if (atConnect) {
      clearInterval(this.dialplanTimer);
      this.dialplanTimer = setInterval(() => void this.checkHandBack(false), BOT_ENDPOINT_RECHECK_MS);
      this.dialplanTimer.unref();
    }
  }

  private endReleased(uuid: string, who: 'caller' | 'bot' | 'unknown', event?: EslEvent): void {
    const call = this.released.get(uuid);
    if (!call) return;
    this.released.delete(uuid);
    call.onReleasedEnd(who, event);
  }

  /** twin-transfers' verdict on a handed-over call's REFER; a refused or failed one leaves the caller to the fallback. */
  private onReleasedTransfer(uuid: string, verdict: TransferVerdict, event: EslEvent): void {
    const call = this.released.get(uuid);
    if (!call) return;
    call.onTransferVerdict(verdict, event);
    if (verdict !== 'transferred') this.released.delete(uuid);
  }

  /**
   * After a reconnect: followed calls whose end was missed while the connection was down. A bridged
   * one was ended by someone (the caller, as far as can be known); one still ringing: unknown.
   */
  private async settleReleasedGoneMeanwhile(control: EslControl): Promise<void> {
    for (const [id, call] of [...this.released]) {
      const exists = await control.api(`uuid_exists ${id}`).catch(() => 'true');
      if (exists.trim() === 'false') this.endReleased(id, 'unknown');
      else if (call.isDialing) {
        // Handed back and still up: TWIN_STATUS tells whether the bot answered meanwhile (the dialplan sets it).
        const status = (await control.api(`uuid_getvar ${id} TWIN_STATUS`).catch(() => '')).trim();
        if (status === 'CONNECTED') call.onMissedBridge();
        else if (status === 'BOT_FAILED') {
          call.onMissedBotFailed();
          this.released.delete(id);
        }
      }
    }
  }

  private retryLater(problem: string): void {
    this.control = undefined;
    if (this.stopped) return;
    this.state = 'reconnecting';
    const delay = this.backoff.next();
    if (problem !== this.lastProblem) this.log.error({ retryInMs: delay }, problem);
    this.lastProblem = problem;
    this.retryTimer = setTimeout(() => void this.connectControl(), delay);
  }
}
