/**
 * FreeSWITCH driver: a server for the dialplan's `socket <host>:<port> async full` (one TCP
 * connection per call, each an AnsweredCall for the call flow), and one inbound ESL connection
 * (`event_socket.conf.xml`'s address and password) that publishes the trunk state as a global
 * variable and comes back with backoff when lost.
 */
import type { FreeswitchConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { TrunkSnapshot } from '../../core/trunk.js';
import { Backoff, LatestValuePublisher, trunkWord, type ConnectionState } from '../shared.js';
import { CallSocketServer, EslControl, type CallSocket } from './esl.js';
import { FsCall } from './fs-call.js';

export type FsCallHandler = (call: FsCall) => void;

export class FreeSwitchDriver {
  private readonly server: CallSocketServer;
  private control?: EslControl;
  private readonly backoff = new Backoff();
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly trunk: LatestValuePublisher;
  private readonly calls = new Set<FsCall>();
  /** State of the inbound ESL connection (the outbound socket server does not depend on it). */
  state: ConnectionState = 'connecting';
  lastProblem?: string;

  constructor(readonly cfg: FreeswitchConfig, private readonly log: Logger, private readonly onCall: FsCallHandler) {
    this.server = new CallSocketServer((socket) => this.accept(socket), cfg.command_timeout_ms);
    this.trunk = new LatestValuePublisher(
      (value) => this.control!.api(`global_setvar ${cfg.trunk_variable}=${value}`),
      () => this.control !== undefined && this.state === 'connected',
      log, 'the trunk state variable',
    );
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  get listenPort(): number {
    return this.server.port;
  }

  /** Listens for calls (rejects if the port cannot be used), then makes one attempt at the inbound connection. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.server.listen(this.cfg.listen_host, this.cfg.listen_port);
    this.log.info({ listen: `${this.cfg.listen_host}:${this.server.port}` }, 'waiting for calls from FreeSWITCH (dialplan socket)');
    await this.connectControl();
  }

  /** Stops taking calls: FreeSWITCH's `socket` then fails and the dialplan goes on to its fallback. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    this.control?.close();
    await this.server.close();
  }

  publishTrunk(trunk: TrunkSnapshot): void {
    this.trunk.set(trunkWord(trunk));
  }

  private accept(socket: CallSocket): void {
    if (this.stopped) return socket.close();
    const call = new FsCall(socket, this.cfg, this.log);
    this.calls.add(call);
    socket.on('end', () => this.calls.delete(call));
    this.onCall(call);
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
      await this.trunk.flush();
    } catch (err) {
      this.retryLater((err as Error).message);
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
