/**
 * FreeSWITCH simulator: the ESL side of a FreeSWITCH 1.10.12 on loopback, built from the recordings
 * in shared/fixtures/freeswitch (see its README, "Quirks a fake server should reproduce").
 *
 * - Outbound: placeCall() runs the shipped dialplan-twin.xml: twin_next_step=not_taken, `answer`,
 *   `socket host:port full` (static), `bridge ${twin_bot_dial}`, then `transfer ${twin_next_step}
 *   XML twin-after-socket` (`socket: 'async'`: the dialplan before issue 20, `socket host:port
 *   async full` and the transfer); it answers `connect`, `myevents`, `linger`, `api`, `sendmsg`,
 *   `exit` with the recorded bytes.
 * - Static socket (h1-h7): commands act at once; a sendmsg'd app runs inline, its +OK comes when it
 *   ends and the events it raised after that; later commands wait behind it. Without `linger` the
 *   socket is closed when the caller hangs up. When the product closes it, `socket` returns (once
 *   no app runs) and the dialplan goes on: the bridge to twin_bot_dial, then twin-after-socket
 *   (CHANNEL_BRIDGE, twin::bot_failed, twin::bot_hangup reach inbound connections).
 * - Async socket: sendmsg is acknowledged `+OK` at once, even on a dead channel; apps then run in
 *   order, one at a time (a looping playback holds the queue until `uuid_break`); results arrive
 *   only as events.
 * - A failed bridge hangs up the caller unless `continue_on_fail` is set or the cause is NO_ANSWER.
 * - A bridged call outlives the socket (e1); a socket closed before goes on in the dialplan after it.
 * - Inbound: `auth/request`, `-ERR invalid` + disconnect notice on a bad password, global variables.
 * - A bot's REFER (s9-refer): sofia BYEs the bot and transfers the caller to the Refer-To user in
 *   `force_transfer_context` (else the caller's own context); in twin-transfers the shipped
 *   dialplan's logic runs (dialplan/freeswitch/twin-transfers.xml), with the person's behaviour.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { causeCode } from '../../core/q850.js';
import { freeswitchTrunkCheck } from '../shipped-dialplan.js';
import {
  fromHeader, type BotBehaviour, type CallerResult, type CallSpec, type PersonBehaviour, type SimCall, type SimDial, type SimInvite,
} from '../call-model.js';
import { appHeaders, CORE_UUID, channelData, eventHeaders, otherLeg, type BotLeg, type FsChannel, type OutboundSession, type RunningApp } from './channel.js';
import { runTwinTransfers, TRANSFERS_CONTEXT, type TransfersHost } from './twin-transfers.js';
import {
  apiResponse, authRequest, commandReply, CommandReader, connectReply, disconnectNotice, jsonEvent,
  fsSeparateString, lingerNotice, originateApp, parseDialString, plainEvent, socketMode, splitApiArgs,
  type AppCommand, type Headers, type SocketMode,
} from './wire.js';
import { freeswitchContextXml } from '../shipped-dialplan.js';

export interface FsSimOptions {
  password?: string;
  /** Gateway name → proxy host:port, for `sofia/gateway/<name>/<user>` dial strings (default: twin). */
  gateways?: Record<string, string>;
  /** Time between a sendmsg's +OK and the app starting (about 20 ms recorded); 0 in the benchmark. */
  execDelayMs?: number;
}

export interface FsPlaceCall extends CallSpec {
  /** Whether the dialplan answered before `socket` (default true). */
  answered?: boolean;
  /** The dialplan's `socket`: `full` as shipped (static), or `async full` as before issue 20. */
  socket?: SocketMode;
  /** The caller hangs up before the dialplan reaches `socket` (a starved box): only the hang-up event is seen. */
  leavesBeforeSocket?: boolean;
}

const BREAKABLE = new Set(['playback', 'sleep', 'park']);

export class FreeSwitchSimulator {
  /** Dialplan contexts FreeSWITCH has loaded (the shipped ones unless a test removes them). */
  readonly dialplanContexts = new Set(['twin-after-socket', 'twin-transfers', 'twin-fallback']);
  readonly password: string;
  /**
   * The sofia gateways FreeSWITCH has (name → proxy host:port); a test may add or remove one while
   * the product runs. A bridge to any other `sofia/gateway/<name>/…` fails with INVALID_GATEWAY.
   */
  readonly gateways: Map<string, string>;
  /** The product's outbound socket server, as in the dialplan's `socket host:port`. */
  socketTarget = { host: '127.0.0.1', port: 8084 };
  /** Whether twin-after-socket has issue 20's `bot_failed` extension (the shipped file's); a test may take it away. */
  afterSocketHasBotFailed = true;
  botBehaviour: (invite: SimInvite) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** While true, FreeSWITCH cannot build bot legs at all (as for a `\"` in the name): no INVITE is sent. */
  legCreationFails = false;
  /** How a subscriber called with `bgapi originate` behaves; called once per dial with the number. */
  subscriberBehaviour: (number: string) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** How the person a transfer rings behaves (the destination's extension, as twin-transfers bridges it). */
  personBehaviour: (destination: { context: string; extension: string }) => PersonBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** Every REFER a bot sent, and every destination a transfer rang, in order. */
  readonly referrals: { callId: string; referTo: string; context: string }[] = [];
  readonly personCalls: { callId: string; context: string; extension: string }[] = [];
  /** Every subscriber dialled with originate, in order. */
  readonly dials: SimDial[] = [];
  readonly invites: SimInvite[] = [];
  keepInvites = 1000;
  readonly globals = new Map<string, string>();
  /** ESL commands received per caller uuid, and on inbound connections. */
  readonly commands = new Map<string, number>();
  inboundCommands = 0;
  port = 0;
  onBotDial?: (socketAt: number, dialAt: number, uuid: string) => void;
  onChannelVar?: (uuid: string, name: string, value: string) => void;
  /** Every command on a call socket: its first line, and for a sendmsg the app and its argument (`multiset ^^|a=b|…`). */
  onCommand?: (uuid: string, line: string, app?: string) => void;
  /** Every command on an inbound connection (auth, event, filter, api ...), as its first line. */
  onInboundCommand?: (line: string) => void;
  /** Holds an inbound connection's `api` reply back this many ms (carried out on arrival; later replies wait behind it). */
  delayInboundApi?: (command: string) => number;

  private readonly server: Server;
  private readonly channels = new Map<string, FsChannel>();
  private readonly inbound = new Set<Socket>();
  /** What each inbound connection asked for: `event <format> <names> [CUSTOM <subclasses>]` and `filter`s. */
  private readonly subscriptions = new Map<Socket, InboundSubscription>();
  private readonly jobTimers = new Set<NodeJS.Timeout>();
  private callCount = 0;

  constructor(private readonly options: FsSimOptions = {}) {
    this.password = options.password ?? 'ClueCon';
    this.gateways = new Map(Object.entries(options.gateways ?? { twin: '127.0.0.1:5072' }));
    this.server = createServer((socket) => this.acceptInbound(socket));
  }

  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async stop(): Promise<void> {
    for (const ch of this.channels.values()) this.clearTimers(ch);
    this.jobTimers.forEach(clearTimeout);
    for (const ch of this.channels.values()) ch.session?.socket.destroy();
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test controls ----

  /** The shipped dialplan's trunk check (extension twin-bot-throttled), read from dialplan-twin.xml. */
  private readonly trunkCheck = freeswitchTrunkCheck();

  /**
   * A caller whose dialplan runs `answer` (unless told not to), sets twin_* variables, then `socket`;
   * unless the shipped trunk check matches first and transfers it to the fallback.
   */
  placeCall(spec: FsPlaceCall = {}): SimCall {
    const check = this.trunkCheck;
    if (check.skips(this.globals.get(check.name))) {
      const { vars, ...target } = check.fallback;
      return { id: randomUUID(), left: Promise.resolve({ kind: 'continued', ...target, vars: { ...vars } }), hangup: () => {} };
    }
    const vars = new Map(Object.entries(spec.hints ?? {}).map(([k, v]) => [`twin_${k}`, v]));
    vars.set('twin_next_step', 'not_taken');
    const number = spec.number ?? '+15551230000';
    const mode = spec.socket ?? 'static';
    if (spec.leavesBeforeSocket) return this.leaveBeforeSocket(randomUUID(), { name: spec.name ?? 'Customer', number }, vars);
    return this.openChannel(randomUUID(), { name: spec.name ?? 'Customer', number }, spec.dialed ?? '100', vars,
      { ...this.socketTarget, mode, full: true }, spec.answered ?? true, false, true);
  }

  /** A channel that runs `socket host:port [async] full`, answered or not. */
  private openChannel(
    uuid: string, caller: { name: string; number: string }, dialed: string, vars: Map<string, string>,
    target: { host: string; port: number; mode?: SocketMode; full?: boolean }, answered: boolean, originated = false,
    dialplanContinues = false,
  ): SimCall {
    let finish: (r: CallerResult) => void = () => {};
    const left = new Promise<CallerResult>((resolve) => { finish = resolve; });
    const ch: FsChannel = {
      uuid, name: `sofia/lab/${caller.number.replace(/[^A-Za-z0-9+*#._%-]/g, '')}@127.0.0.1:5082`, caller,
      dialed, answered, state: 'socket', vars, originated, dialplanContinues,
      queue: [], timers: [], created: Date.now(), seq: 0, earlyLingerNotice: this.callCount++ % 2 === 1, finish,
    };
    this.channels.set(uuid, ch);
    const mode = target.mode ?? 'async';
    this.connectOut(ch, target, mode, target.full ?? mode === 'async');
    return { id: uuid, left, hangup: () => this.hangup(ch, 'NORMAL_CLEARING', { kind: 'hungup-by-caller', vars: {} }) };
  }

  /**
   * The dialplan stops where the caller hung up: no `socket` ran, so no socket_host, and
   * CHANNEL_HANGUP_COMPLETE still carries twin_next_step=not_taken (recorded on FreeSWITCH 1.10.12).
   */
  private leaveBeforeSocket(uuid: string, caller: { name: string; number: string }, vars: Map<string, string>): SimCall {
    const ch: FsChannel = {
      uuid, name: `sofia/lab/${caller.number.replace(/[^A-Za-z0-9+*#._%-]/g, '')}@127.0.0.1:5082`, caller,
      dialed: '100', answered: true, state: 'hungup', vars, originated: false, dialplanContinues: true,
      queue: [], timers: [], created: Date.now(), seq: 0, earlyLingerNotice: false, finish: () => {},
    };
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    return { id: uuid, left: Promise.resolve({ kind: 'hungup-by-caller', vars: Object.fromEntries(vars) }), hangup: () => {} };
  }

  /** The bot of a bridged caller sends its REFER now (Refer-To: sip:<to>@pbx); false if no bot is bridged to it. */
  botRefer(callId: string, to: string): boolean {
    const ch = this.channels.get(callId);
    const bridge = ch?.bot?.state === 'answered' ? ch.running : undefined;
    if (!ch || !bridge || bridge.app !== 'bridge') return false;
    this.botRefers(ch, bridge, to);
    return true;
  }

  /** The bot bridged to this caller sends BYE now (a test's way to make one bot hang up); false if none is bridged. */
  botHangsUp(callId: string): boolean {
    const ch = this.channels.get(callId);
    const bridge = ch?.bot?.state === 'answered' ? ch.running : undefined;
    if (!ch || !bridge || bridge.app !== 'bridge') return false;
    this.botHungUp(ch, bridge);
    return true;
  }

  /** Cut every outbound socket from FreeSWITCH's side, as when the product's host goes away. */
  dropOutboundSockets(): void {
    for (const ch of this.channels.values()) ch.session?.socket.destroy();
  }

  /** Channels whose socket got the product's `connect` while the caller was still there. */
  private readonly announced = new Set<string>();

  /** Whether the product asked for this channel's data (a caller gone before that is never seen). */
  wasAnnounced(uuid: string): boolean {
    return this.announced.has(uuid);
  }

  /** While true, inbound connections are cut as soon as they arrive (FreeSWITCH restarting). */
  restarting = false;

  dropInbound(): void {
    for (const s of this.inbound) s.destroy();
  }

  channel(uuid: string): FsChannel | undefined {
    return this.channels.get(uuid);
  }

  /** Calls not yet ended, and sockets the product left open after its call ended. */
  leftovers(): string[] {
    const left: string[] = [];
    for (const ch of this.channels.values()) {
      if (ch.state !== 'hungup') left.push(`channel ${ch.name} (${ch.state})`);
      else if (ch.session && !ch.session.closed) left.push(`socket of ${ch.name} still open`);
    }
    return left;
  }

  totalCommands(): number {
    let n = this.inboundCommands;
    for (const v of this.commands.values()) n += v;
    return n;
  }

  // ---- outbound socket (FreeSWITCH → product) ----

  private connectOut(ch: FsChannel, target: { host: string; port: number }, mode: SocketMode, full: boolean): void {
    ch.vars.set('socket_host', target.host); // set by the socket app before it connects (mod_event_socket.c)
    const socket = createConnection({ host: target.host, port: target.port, allowHalfOpen: true });
    socket.setNoDelay(true);
    const session: OutboundSession = {
      socket, format: 'none', linger: null, closed: false, mode, full, backlog: [], nixed: new Set(), heldEvents: [],
    };
    ch.session = session;
    const reader = new CommandReader();
    socket.on('connect', () => { ch.socketAt = performance.now(); });
    socket.on('data', (chunk) => {
      for (const cmd of reader.push(chunk)) this.onOutboundCommand(ch, cmd);
    });
    socket.on('error', () => { /* reported by close */ });
    socket.on('end', () => this.productClosed(ch));
    socket.on('close', () => {
      const neverConnected = ch.socketAt === undefined;
      this.closeOutbound(ch, false);
      // e5: nothing listening. The shipped dialplan goes on to its fallback after `socket`.
      if (neverConnected) this.afterSocketFailed(ch, { socket_failed: 'true' });
    });
  }

  /**
   * The product ended its side. Static: FreeSWITCH serves the commands already sent (an app running
   * inline first, h5), then says goodbye and `socket` returns. Async: at once.
   */
  private productClosed(ch: FsChannel): void {
    const session = ch.session;
    if (!session || session.closed) return;
    session.productEnded = true;
    if (session.mode === 'static' && session.waitingFor !== undefined) return; // releaseStaticReply goes on
    this.closeOutbound(ch, true);
  }

  /** The app closed (or lost) the socket: FreeSWITCH says goodbye, and `socket` returns unless an app still runs. */
  private closeOutbound(ch: FsChannel, writeGoodbye: boolean): void {
    const session = ch.session;
    if (!session || session.closed) return;
    session.closed = true;
    if (writeGoodbye && !session.socket.destroyed) session.socket.end(disconnectNotice(ch.uuid));
    else session.socket.destroy();
    this.forgetIfDone(ch);
    if (ch.state !== 'socket' || ch.socketAt === undefined) return;
    if (ch.bot?.state === 'answered') return; // e1/e2: the bridge goes on without us
    if (ch.playing) return; // closed mid-hold (s10): `socket` returns only when the playback ends
    this.socketReturned(ch);
  }

  /**
   * `socket` returned with the caller still up: a uuid_transfer sent meanwhile takes the caller (p9);
   * else the shipped dialplan's `transfer ${twin_next_step} XML twin-after-socket` (h1); a channel
   * without that line (an originated one) is hung up.
   */
  private socketReturned(ch: FsChannel): void {
    if (ch.state !== 'socket') return;
    if (ch.pendingHangup) return this.appHangup(ch, ch.pendingHangup);
    if (ch.pendingTransfer) return this.transfer(ch, ch.pendingTransfer.extension, ch.pendingTransfer.context);
    if (ch.dialplanContinues) {
      // The shipped dialplan's `bridge ${twin_bot_dial}` (issue 20; empty: it does nothing).
      if (ch.session?.mode === 'static' && ch.vars.get('twin_bot_dial')) return this.dialplanBridge(ch);
      return this.afterSocketStep(ch);
    }
    if (ch.vars.get('twin_next_step') === 'released') return this.afterHandedOverBotHangup(ch);
    this.hangup(ch, 'NORMAL_CLEARING', { kind: 'hungup-by-app', reasonCode: '16', reason: 'socket closed', vars: {} });
  }

  /** A static socket's thread is inside an app: what it sends waits until the app has ended (h7). */
  private writeOrHold(ch: FsChannel, bytes: string): void {
    const session = ch.session;
    if (session?.mode === 'static' && session.waitingFor !== undefined) session.heldEvents.push(bytes);
    else this.write(ch, bytes);
  }

  private write(ch: FsChannel, bytes: string): void {
    const s = ch.session;
    if (s && !s.closed && !s.socket.destroyed) s.socket.write(bytes);
  }

  private onOutboundCommand(ch: FsChannel, cmd: AppCommand): void {
    this.commands.set(ch.uuid, (this.commands.get(ch.uuid) ?? 0) + 1);
    const app = cmd.headers.get('execute-app-name');
    const appArg = cmd.headers.get('execute-app-arg') ?? cmd.body ?? '';
    this.onCommand?.(ch.uuid, cmd.line, app !== undefined ? `${app} ${appArg}` : undefined);
    const [verb = '', ...args] = cmd.line.split(' ');
    const session = ch.session!;
    const isStatic = session.mode === 'static';
    if (isStatic && session.waitingFor !== undefined) return void session.backlog.push(cmd);
    switch (verb) {
      case 'connect':
        if (ch.state === 'socket') this.announced.add(ch.uuid);
        return this.write(ch, connectReply(channelData(ch), session.mode, session.full));
      case 'myevents':
        // Static mode without `full` answers +OK but sends no event at all (s8-outbound-static-socket).
        if (!isStatic || session.full) session.format = args[0] === 'json' ? 'json' : 'plain';
        return this.write(ch, commandReply('+OK Events Enabled'));
      case 'linger': {
        if (isStatic && !session.full) return this.write(ch, commandReply('-ERR command not found'));
        const seconds = args[0] ? Number(args[0]) : -1;
        session.linger = seconds;
        return this.write(ch, commandReply(seconds > 0 ? `+OK will linger ${seconds} seconds` : '+OK will linger'));
      }
      case 'nixevent':
        if (args.length === 0) return this.write(ch, commandReply('-ERR no keywords supplied'));
        args.forEach((name) => session.nixed.add(name));
        return this.write(ch, commandReply('+OK events nixed'));
      case 'nolinger':
        session.linger = null;
        return this.write(ch, commandReply('+OK will not linger'));
      case 'event':
        session.format = args[0] === 'json' ? 'json' : 'plain';
        return this.write(ch, commandReply(`+OK event listener enabled ${session.format}`));
      case 'api': return this.write(ch, apiResponse(this.api(args.join(' '))));
      case 'sendmsg': {
        if (!isStatic) {
          this.write(ch, commandReply('+OK'));
          return void this.sendmsg(ch, cmd.headers, undefined, cmd.body);
        }
        // Static: the caller's thread runs the app now, inline; the reply waits for its end.
        const queued = this.sendmsg(ch, cmd.headers, null, cmd.body);
        if (queued === undefined) return this.write(ch, commandReply('+OK'));
        session.waitingFor = queued;
        return this.runQueue(ch);
      }
      case 'exit':
        this.write(ch, commandReply('+OK bye'));
        return this.closeOutbound(ch, true);
      default: return this.write(ch, commandReply('-ERR command not found'));
    }
  }

  /** Queues an app (to run after `delayMs`, or when the caller says: null); returns its uuid when one was queued. */
  private sendmsg(ch: FsChannel, h: Map<string, string>, delayMs?: number | null, body?: string): string | undefined {
    if (ch.state !== 'socket') return undefined; // a5: +OK, and nothing happens
    const command = h.get('call-command');
    if (command === 'hangup') {
      const cause = h.get('hangup-cause') ?? 'NORMAL_CLEARING';
      this.later(ch, () => this.appHangup(ch, cause));
      return undefined;
    }
    if (command !== 'execute') return undefined;
    const app = h.get('execute-app-name') ?? '';
    const uuid = h.get('event-uuid') ?? randomUUID();
    // mod_event_socket: without execute-app-arg, a text/plain body is the argument.
    const arg = h.get('execute-app-arg') ?? (h.get('content-type') === 'text/plain' ? body ?? '' : '');
    ch.queue.push({ app, arg, uuid });
    if (delayMs !== null) this.later(ch, () => this.runQueue(ch), delayMs);
    return uuid;
  }

  /**
   * Static mode: an app finished (or the call ended), so its sendmsg reply goes out, then the events
   * it raised (h7), then the commands that waited; a socket the product ended returns now (h5).
   */
  private releaseStaticReply(ch: FsChannel, appUuid?: string): void {
    const session = ch.session;
    if (!session || session.waitingFor === undefined || (appUuid !== undefined && session.waitingFor !== appUuid)) return;
    session.waitingFor = undefined;
    this.write(ch, commandReply('+OK'));
    for (const bytes of session.heldEvents.splice(0)) this.write(ch, bytes);
    for (const cmd of session.backlog.splice(0)) this.onOutboundCommand(ch, cmd);
    if (session.productEnded && session.waitingFor === undefined) this.closeOutbound(ch, true);
  }

  private later(ch: FsChannel, fn: () => void, ms = this.options.execDelayMs ?? 2): void {
    ch.timers.push(setTimeout(fn, ms));
  }

  // ---- events ----

  private emitEvent(ch: FsChannel, name: string, state: string, extra: Headers = [], trailer: Headers = []): void {
    const session = ch.session;
    const format = session?.format ?? 'none';
    if (format === 'none' || !session || session.closed || session.nixed.has(name)) return;
    const headers = eventHeaders(ch, name, state, extra, trailer);
    const bytes = format === 'json' ? jsonEvent(headers) : plainEvent(headers);
    // A static socket's thread is inside the app: its events wait until the app has ended (h7).
    if (session.mode === 'static' && session.waitingFor !== undefined) session.heldEvents.push(bytes);
    else this.write(ch, bytes);
  }

  private setVar(ch: FsChannel, name: string, value: string): void {
    ch.vars.set(name, value);
    this.onChannelVar?.(ch.uuid, name, value);
  }

  // ---- apps ----

  private runQueue(ch: FsChannel): void {
    while (!ch.running && ch.state === 'socket') {
      const next = ch.queue.shift();
      if (!next) return;
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(next));
      this.setVar(ch, 'current_application', next.app);
      this.startApp(ch, next);
    }
  }

  private startApp(ch: FsChannel, app: { app: string; arg: string; uuid: string }): void {
    switch (app.app) {
      case 'multiset': {
        // `^^<d>a=b<d>c=d`: split on <d> (else on spaces); values kept as they are; empty = unset.
        const custom = app.arg.startsWith('^^') && app.arg.length > 2;
        const pairs = custom ? app.arg.slice(3).split(app.arg[2]!) : app.arg.split(' ');
        for (const pair of pairs.filter(Boolean)) {
          const [name = '', ...value] = pair.split('=');
          if (value.join('=') === '') ch.vars.delete(name);
          else this.setVar(ch, name, value.join('='));
        }
        return this.complete(ch, app);
      }
      case 'set': case 'export': {
        const [name = '', ...value] = app.arg.replace(/^nolocal:/, '').split('=');
        this.setVar(ch, name, value.join('='));
        return this.complete(ch, app);
      }
      case 'answer':
        ch.answered = true;
        return this.complete(ch, app);
      case 'playback': return this.playback(ch, app);
      case 'bridge': return this.bridge(ch, app);
      case 'transfer': {
        this.complete(ch, app);
        const [extension = '', , context = 'default'] = app.arg.split(' ');
        return this.transfer(ch, extension, context);
      }
      case 'hangup': return this.appHangup(ch, app.arg || 'NORMAL_CLEARING');
      default:
        return this.complete(ch, app, '-ERR no such application');
    }
  }

  private complete(ch: FsChannel, app: { app: string; arg: string; uuid: string }, response = '_none_'): void {
    if (ch.running?.uuid === app.uuid) ch.running = undefined;
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(app, response));
    this.releaseStaticReply(ch, app.uuid);
  }

  /** A looping tone or MOH plays until broken, unless the channel variable playback_timeout_sec bounds it. */
  private playback(ch: FsChannel, app: { app: string; arg: string; uuid: string }): void {
    if (ch.pendingBreak) {
      ch.pendingBreak = false;
      return this.complete(ch, app, 'FILE PLAYED');
    }
    const endless = /loops=-1/.test(app.arg) || app.arg.startsWith('local_stream://');
    const boundS = Number(ch.vars.get('playback_timeout_sec') ?? 0);
    ch.playing = app.arg.startsWith('local_stream://') ? 'moh' : 'ring';
    const running: RunningApp = { ...app, interrupt: () => { ch.playing = undefined; this.complete(ch, app, 'FILE PLAYED'); } };
    ch.running = running;
    const playMs = !endless ? 20 : boundS > 0 ? boundS * 1000 : undefined;
    if (playMs !== undefined) {
      this.later(ch, () => {
        if (ch.running !== running) return;
        running.interrupt!();
        if (ch.session?.closed) this.socketAppReturned(ch);
        else this.runQueue(ch);
      }, playMs);
    }
  }

  /**
   * The `socket` app returns once the app it was running ends after the connection is lost: the
   * shipped dialplan then goes on to its fallback (recording s10-sigkill: an endless ringback
   * never ends, so the caller rang until they gave up).
   */
  private socketAppReturned(ch: FsChannel): void {
    if (ch.state !== 'socket') return;
    if (ch.dialplanContinues) return this.socketReturned(ch);
    this.afterSocketFailed(ch, { socket_lost: 'true' });
  }

  /** The dialplan's `bridge ${twin_bot_dial}` after `socket` (the caller handed back, h1). */
  private dialplanBridge(ch: FsChannel): void {
    ch.state = 'bot';
    this.bridge(ch, { app: 'bridge', arg: ch.vars.get('twin_bot_dial') ?? '', uuid: randomUUID(), inDialplan: true });
  }

  /** `transfer ${twin_next_step} XML twin-after-socket`: its extensions as shipped. */
  private afterSocketStep(ch: FsChannel): void {
    const step = ch.vars.get('twin_next_step') ?? '';
    if (step === 'released') return this.afterHandedOverBotHangup(ch);
    if (step === 'not_taken') return this.afterSocketFailed(ch, { socket_lost: 'true' });
    if (step === 'bot_failed' && this.afterSocketHasBotFailed) return this.botFailedExtension(ch);
    // No such extension in twin-after-socket: FreeSWITCH hangs the caller up.
    this.hangup(ch, 'NO_ROUTE_DESTINATION', { kind: 'hungup-by-app', reasonCode: '3', reason: `no extension ${step}`, vars: {} });
  }

  /** A `transfer` to <extension> XML twin-after-socket: FreeSWITCH adds it to transfer_history (h1). */
  private enterExtension(ch: FsChannel, extension: string): void {
    const entry = `${Math.floor(Date.now() / 1000)}:${randomUUID()}:bl_xfer:${extension}/twin-after-socket/XML`;
    const history = ch.vars.get('transfer_history');
    this.setVar(ch, 'transfer_history', history ? `${history},${entry}` : entry);
    ch.profile = { destination: extension, context: 'twin-after-socket' };
  }

  /** The dialplan's bridge returned: `transfer ${twin_next_step} XML twin-after-socket`. */
  private afterBotBridge(ch: FsChannel): void {
    if (ch.state !== 'bot') return;
    this.afterSocketStep(ch);
  }

  /**
   * twin-after-socket's `bot_failed` (h2): TWIN_STATUS=BOT_FAILED, CUSTOM twin::bot_failed with the
   * caller's variables (originate_disposition, the SIP cause), then the route's fallback (twin_fb_*).
   */
  private botFailedExtension(ch: FsChannel): void {
    this.enterExtension(ch, 'bot_failed');
    ch.vars.delete('force_transfer_context');
    ch.vars.delete('bridge_pre_execute_aleg_app');
    this.setVar(ch, 'TWIN_STATUS', 'BOT_FAILED');
    this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', 'twin::bot_failed']]));
    ch.state = 'transferred';
    if (ch.vars.get('twin_fb_action') === 'continue') {
      return this.continueTo(ch, ch.vars.get('twin_fb_extension') ?? '', ch.vars.get('twin_fb_context') ?? '');
    }
    const cause = ch.vars.get('twin_fb_cause') ?? 'NORMAL_CLEARING';
    this.end(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
  }

  private bridge(ch: FsChannel, app: RunningApp): void {
    const { vars, endpoint } = parseDialString(app.arg);
    if (this.legCreationFails || /\\"/.test(vars.get('origination_caller_id_name') ?? ch.caller.name)) return this.unbuildableLeg(ch, app);
    const gateway = /^sofia\/gateway\/([^/]+)\//.exec(endpoint)?.[1];
    if (gateway !== undefined && !this.gateways.has(gateway)) return this.unbuildableLeg(ch, app, 'INVALID_GATEWAY');
    const invite = this.makeInvite(ch, endpoint, vars);
    this.invites.push(invite);
    if (this.invites.length > this.keepInvites) this.invites.shift();
    if (ch.socketAt !== undefined) this.onBotDial?.(ch.socketAt, performance.now(), ch.uuid);
    const bot: BotLeg = { uuid: randomUUID(), state: 'ringing', invite, timers: [] };
    ch.bot = bot;
    const running: RunningApp = { ...app };
    ch.running = running;
    const botLater = (ms: number, fn: () => void) => bot.timers.push(setTimeout(fn, ms));
    const fail = (cause: string, dialStatus: string, proto?: string, alwaysContinues = false) => {
      this.endBot(ch);
      this.setVar(ch, 'originate_disposition', cause);
      this.setVar(ch, 'DIALSTATUS', dialStatus);
      this.setVar(ch, 'last_bridge_hangup_cause', cause);
      this.setVar(ch, 'originate_failed_cause', cause);
      if (proto) this.setVar(ch, 'last_bridge_proto_specific_hangup_cause', proto);
      if (alwaysContinues || ch.vars.get('continue_on_fail') === 'true') {
        this.complete(ch, running);
        if (running.inDialplan) this.afterBotBridge(ch);
        else this.runQueue(ch);
      } else {
        this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
      }
    };
    const originateTimeout = Number(vars.get('originate_timeout') ?? 0);
    const legTimeout = Number(vars.get('leg_timeout') ?? 0);
    if (legTimeout > 0) botLater(legTimeout * 1000, () => fail('ALLOTTED_TIMEOUT', 'ALLOTTED_TIMEOUT'));
    else botLater((originateTimeout || 60) * 1000, () => fail('NO_ANSWER', 'NOANSWER', undefined, true));

    const b = this.botBehaviour(invite);
    switch (b.kind) {
      case 'answer':
        return void botLater(b.afterMs ?? 5, () => this.botAnswered(ch, running, b.hangupAfterMs, b.refer));
      case 'busy':
        return void botLater(b.afterMs ?? 5, () => fail('USER_BUSY', 'BUSY', 'sip:486'));
      case 'unavailable':
        return void botLater(b.afterMs ?? 5, () => fail('NORMAL_TEMPORARY_FAILURE', 'NORMAL_TEMPORARY_FAILURE', 'sip:503'));
      case 'no-answer':
        return;
    }
  }

  private botAnswered(ch: FsChannel, running: RunningApp, hangupAfterMs?: number, refer?: { afterMs: number; to: string }): void {
    const bot = ch.bot!;
    bot.timers.forEach(clearTimeout);
    bot.state = 'answered';
    this.setVar(ch, 'originate_disposition', 'SUCCESS');
    this.setVar(ch, 'DIALSTATUS', 'SUCCESS');
    this.setVar(ch, 'bridge_uuid', bot.uuid);
    this.setVar(ch, 'bridge_to', bot.uuid); // while bridged only (switch_ivr_bridge.c clears it when the bridge ends)
    this.emitEvent(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE', otherLeg(ch, bot));
    this.publishInbound(eventHeaders(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE', otherLeg(ch, bot)));
    // bridge_pre_execute_aleg_app runs once the bridge is up, after CHANNEL_BRIDGE, as an app (h1, h7).
    const hook = ch.vars.get('bridge_pre_execute_aleg_app');
    if (hook === 'multiset' || hook === 'set') {
      const data = ch.vars.get('bridge_pre_execute_aleg_data') ?? '';
      const app = { app: hook, arg: data, uuid: randomUUID() };
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(app));
      for (const pair of hook === 'set' ? [data] : data.split(' ').filter(Boolean)) {
        const [name = '', ...value] = pair.split('=');
        this.setVar(ch, name, value.join('='));
      }
      this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(app, '_none_'));
    }
    if (hangupAfterMs !== undefined) bot.timers.push(setTimeout(() => this.botHungUp(ch, running), hangupAfterMs));
    if (refer) bot.timers.push(setTimeout(() => this.botRefers(ch, running, refer.to), refer.afterMs));
  }

  /** a3: the bot's BYE unbridges; the caller stays parked under the socket's control. */
  private botHungUp(ch: FsChannel, running: RunningApp): void {
    if (ch.bot?.state !== 'answered') return;
    this.endBot(ch);
    this.setVar(ch, 'bridge_hangup_cause', 'NORMAL_CLEARING');
    this.setVar(ch, 'last_bridge_hangup_cause', 'NORMAL_CLEARING');
    this.setVar(ch, 'last_bridge_proto_specific_hangup_cause', 'sip:200'); // h3, h7: the bot's BYE
    this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    this.complete(ch, running);
    if (running.inDialplan) return this.afterBotBridge(ch);
    // e2: with the socket gone, the socket app returns: the shipped dialplan goes on after it.
    if (!ch.session || ch.session.closed) {
      if (ch.state === 'socket' && ch.dialplanContinues) {
        ch.state = 'bot'; // `bridge ${twin_bot_dial}` (empty: nothing) and the transfer after it
        return this.afterSocketStep(ch);
      }
      this.afterHandedOverBotHangup(ch);
    } else this.runQueue(ch);
  }

  /**
   * The bot's in-dialog REFER (s9-refer): sofia answers 202, NOTIFYs 200, BYEs the bot and transfers
   * the caller to the Refer-To user, in force_transfer_context if set, else the caller's own context.
   * The socket (if still open) sees UNBRIDGE (already carrying transfer_history and sip_refer_to),
   * EXECUTE_COMPLETE(bridge), UNPARK, EXECUTE_COMPLETE(socket), two CHANNEL_STATEs, then the new dialplan.
   */
  private botRefers(ch: FsChannel, running: RunningApp, referTo: string): void {
    if (ch.bot?.state !== 'answered' || ch.state === 'hungup') return;
    const context = ch.vars.get('force_transfer_context') || (ch.profile?.context ?? 'public');
    this.referrals.push({ callId: ch.uuid, referTo, context });
    this.endBot(ch);
    const entry = `${Math.floor(Date.now() / 1000)}:${randomUUID()}:bl_xfer:${referTo}/${context}/XML`;
    const history = ch.vars.get('transfer_history');
    this.setVar(ch, 'transfer_history', history ? `ARRAY::${history.replace(/^ARRAY::/, '')}|:${entry}` : entry);
    this.setVar(ch, 'sip_refer_to', `<sip:${referTo}@127.0.0.1:5090>`);
    this.setVar(ch, 'bridge_hangup_cause', 'NORMAL_CLEARING');
    ch.profile = { destination: referTo, context };
    const underSocket = ch.state === 'socket';
    ch.state = 'transferred';
    ch.queue = [];
    this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    this.complete(ch, running);
    if (underSocket) this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_ROUTING');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_EXECUTE');
    if (context === TRANSFERS_CONTEXT) return runTwinTransfers(ch, referTo, this.transfersHost);
    // The caller's own dialplan: whatever it has under that name (the toll-fraud case).
    this.continueTo(ch, referTo, context);
  }

  private socketAppEnded(ch: FsChannel): void {
    this.emitEvent(ch, 'CHANNEL_UNPARK', 'CS_EXECUTE');
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders({ app: 'socket', arg: `${this.socketTarget.host}:${this.socketTarget.port} async full`, uuid: ch.uuid }, '_none_'));
  }

  /** A transferred caller goes on in other dialplan, which answers, plays a prompt and hangs up (as the fallbacks do). */
  private continueTo(ch: FsChannel, extension: string, context: string): void {
    ch.finish({ kind: 'continued', context, extension, priority: 1, vars: Object.fromEntries(ch.vars) });
    this.later(ch, () => this.end(ch, 'NORMAL_CLEARING'), 10);
  }

  /** The simulator's side of the twin-transfers model: events, variables, timers, and what the test sees. */
  private readonly transfersHost: TransfersHost = {
    runApp: (ch, app, data, effect) => {
      const uuid = randomUUID();
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders({ app, arg: data, uuid }));
      effect?.();
      this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders({ app, arg: data, uuid }, '_none_'));
      const subclass = app === 'event' ? /Event-Subclass=([^,]*)/.exec(data)?.[1] : undefined;
      if (subclass) this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', subclass]]));
    },
    appStarted: (ch, app, data) => {
      ch.running = { app, arg: data, uuid: randomUUID() };
      this.emitEvent(ch, 'CHANNEL_EXECUTE', 'CS_EXECUTE', [], appHeaders(ch.running));
    },
    setVar: (ch, name, value) => this.setVar(ch, name, value),
    unsetVar: (ch, name) => { ch.vars.delete(name); },
    later: (ch, fn, ms) => this.later(ch, fn, ms),
    bridged: (ch) => {
      this.emitEvent(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE');
      this.publishInbound(eventHeaders(ch, 'CHANNEL_BRIDGE', 'CS_EXECUTE')); // p5: the product's filter lets it through
    },
    unbridged: (ch) => {
      const bridge = ch.running;
      ch.running = undefined;
      this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
      if (bridge) this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(bridge, '_none_'));
    },
    continueTo: (ch, extension, context) => this.continueTo(ch, extension, context),
    hangup: (ch, cause) => this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} }),
    personBehaviour: (destination) => this.personBehaviour(destination),
    personRang: (ch, destination) => this.personCalls.push({ callId: ch.uuid, ...destination }),
    reached: (ch, target, destination) => ch.finish({ kind: 'transferred', target, ...destination, vars: Object.fromEntries(ch.vars) }),
  };

  private endBot(ch: FsChannel): void {
    if (!ch.bot || ch.bot.state === 'gone') return;
    ch.bot.timers.forEach(clearTimeout);
    ch.bot.state = 'gone';
    ch.vars.delete('bridge_to');
  }

  /**
   * A display name with `\"` inherited by the bot leg: FreeSWITCH logs "Error creating HANDLE!",
   * sends no INVITE, and the bridge fails with DESTINATION_OUT_OF_ORDER / INVALIDARGS and no SIP
   * code (second recording, README). A gateway that does not exist fails the same way before any
   * INVITE, with INVALID_GATEWAY (mod_sofia's sofia_outgoing_channel; DIALSTATUS stays INVALIDARGS,
   * as switch_ivr_originate sets it before the leg is made).
   */
  private unbuildableLeg(ch: FsChannel, app: RunningApp, cause = 'DESTINATION_OUT_OF_ORDER'): void {
    ch.running = { ...app };
    this.later(ch, () => {
      for (const [name, value] of [['originate_disposition', cause], ['DIALSTATUS', 'INVALIDARGS'],
        ['originate_failed_cause', cause], ['last_bridge_hangup_cause', cause]] as const) {
        this.setVar(ch, name, value);
      }
      if (ch.vars.get('continue_on_fail') === 'true') {
        this.complete(ch, app);
        if (app.inDialplan) this.afterBotBridge(ch);
        else this.runQueue(ch);
      } else {
        this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
      }
    });
  }

  private makeInvite(ch: FsChannel, endpoint: string, vars: Map<string, string>): SimInvite {
    const headers: [string, string][] = [];
    const add = (name: string, value: string) => {
      const m = /^sip_h_(.+)$/.exec(name.replace(/^nolocal:/, ''));
      if (m) headers.push([m[1]!, value]);
    };
    for (const [n, v] of ch.vars) add(n, v);
    for (const [n, v] of vars) add(n, v);
    const gateway = /^sofia\/gateway\/([^/]+)\/(.+)$/.exec(endpoint);
    const direct = /^sofia\/[^/]+\/(?:sips?:)?(.+)$/.exec(endpoint);
    const requestUri = gateway
      ? `sip:${gateway[2]}@${this.gateways.get(gateway[1]!) ?? '127.0.0.1:5072'}`
      : `sip:${direct?.[1] ?? endpoint}`;
    const identity = {
      name: vars.get('origination_caller_id_name') ?? ch.caller.name,
      number: vars.get('origination_caller_id_number') ?? ch.caller.number,
    };
    const from = fromHeader(identity);
    // Remote-Party-ID is built from the number as it is, CR LF included (second recording, README).
    const remotePartyId = `"${identity.name}" <sip:${identity.number}@127.0.0.1>`;
    const lines = [
      `INVITE ${requestUri} SIP/2.0`, 'Via: SIP/2.0/UDP 127.0.0.1:5090;rport;branch=z9hG4bK' + ch.uuid.slice(0, 8),
      'Max-Forwards: 69', `From: ${from};tag=${ch.uuid.slice(-8)}`, `To: <${requestUri}>`, `Call-ID: ${randomUUID()}`,
      'CSeq: 1 INVITE', gateway ? `Contact: <sip:gw+${gateway[1]}@127.0.0.1:5090;transport=udp;gw=${gateway[1]}>` : 'Contact: <sip:mod_sofia@127.0.0.1:5090>',
      'User-Agent: FreeSWITCH-mod_sofia/1.10.12-release~64bit',
      'Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY',
      'Supported: timer, path, replaces', 'Allow-Events: talk, hold, conference, refer',
      'Content-Type: application/sdp', 'Content-Disposition: session', 'Content-Length: 0',
      // Quirk 13: the custom headers come after Content-Length.
      ...headers.map(([n, v]) => `${n}: ${v}`),
      'X-FS-Support: update_display,send_info', `Remote-Party-ID: ${remotePartyId};party=calling;screen=yes;privacy=off`, '', '',
    ];
    return { requestUri, from, headers, raw: lines.join('\r\n') };
  }

  // ---- leaving the socket: transfer, hangup ----

  private transfer(ch: FsChannel, extension: string, context: string): void {
    if (ch.state !== 'socket' && ch.state !== 'bot') return;
    this.interruptRunning(ch);
    this.endBot(ch);
    ch.queue = [];
    ch.state = 'transferred';
    this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_ROUTING');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_EXECUTE');
    // The fallback extension answers, plays a prompt and hangs up; its events still reach the socket (b3).
    this.continueTo(ch, extension, context);
  }

  private appHangup(ch: FsChannel, cause: string): void {
    this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? cause), reason: cause, vars: {} });
  }

  /** Ends a channel under our socket, with the recorded event order (a1, b1, c1). */
  private hangup(ch: FsChannel, cause: string, result: CallerResult): void {
    if (ch.state !== 'socket' && ch.state !== 'bot') {
      // A caller elsewhere in the dialplan: `left` was settled already, unless a transfer still rang.
      if (ch.state === 'transferred') this.end(ch, cause, result);
      return;
    }
    this.end(ch, cause, result);
  }

  private end(ch: FsChannel, cause: string, result?: CallerResult): void {
    if (ch.state === 'hungup') return;
    const underSocket = ch.state === 'socket';
    ch.state = 'hungup';
    this.setVar(ch, 'hangup_cause', cause);
    this.emitEvent(ch, 'CHANNEL_HANGUP', 'CS_EXECUTE');
    const session = ch.session;
    const lingering = session !== undefined && !session.closed && session.linger !== null;
    // Static: the caller's thread is the socket's; it says the channel is down (linger notice) after
    // the events it has, and nothing after: `socket` returns, and the rest fires once it has (h7).
    if (session?.mode === 'static' && underSocket) return this.endUnderStaticSocket(ch, result);
    if (lingering && ch.earlyLingerNotice) this.writeOrHold(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
    if (ch.bot?.state === 'answered') this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    if (ch.bot?.state === 'ringing') this.setVar(ch, 'originate_disposition', 'ORIGINATOR_CANCEL');
    this.endBot(ch);
    this.interruptRunning(ch);
    if (underSocket) this.socketAppEnded(ch);
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_HANGUP');
    this.emitEvent(ch, 'CHANNEL_STATE', 'CS_REPORTING');
    this.emitEvent(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING');
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    if (lingering && !ch.earlyLingerNotice) this.writeOrHold(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
    this.releaseStaticReply(ch);
    if (lingering && session.linger! > 0) this.later(ch, () => this.closeOutbound(ch, true), session.linger! * 1000);
    if (session && !lingering) this.closeOutbound(ch, true);
    this.clearTimers(ch);
    if (result) ch.finish({ ...result, vars: { ...Object.fromEntries(ch.vars), ...result.vars } } as CallerResult);
    this.forgetIfDone(ch);
  }

  private endUnderStaticSocket(ch: FsChannel, result?: CallerResult): void {
    const session = ch.session!;
    const lingering = !session.closed && session.linger !== null;
    if (ch.bot?.state === 'answered') this.emitEvent(ch, 'CHANNEL_UNBRIDGE', 'CS_EXECUTE');
    if (ch.bot?.state === 'ringing') this.setVar(ch, 'originate_disposition', 'ORIGINATOR_CANCEL');
    this.endBot(ch);
    this.interruptRunning(ch);
    this.releaseStaticReply(ch);
    this.publishInbound(eventHeaders(ch, 'CHANNEL_HANGUP_COMPLETE', 'CS_REPORTING'));
    if (lingering) {
      this.write(ch, lingerNotice(ch.uuid, ch.name, session.linger!));
      if (session.linger! > 0) this.later(ch, () => this.closeOutbound(ch, true), session.linger! * 1000);
    } else this.closeOutbound(ch, true);
    this.clearTimers(ch);
    if (result) ch.finish({ ...result, vars: { ...Object.fromEntries(ch.vars), ...result.vars } } as CallerResult);
    this.forgetIfDone(ch);
  }

  /** A channel is forgotten once it has hung up and its socket is closed, as FreeSWITCH destroys it then. */
  private forgetIfDone(ch: FsChannel): void {
    if (ch.state === 'hungup' && (!ch.session || ch.session.closed)) this.channels.delete(ch.uuid);
  }

  private interruptRunning(ch: FsChannel): void {
    const running = ch.running;
    if (!running) return;
    ch.running = undefined;
    ch.playing = undefined;
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders(running, '_none_'));
  }

  private clearTimers(ch: FsChannel): void {
    ch.timers.forEach(clearTimeout);
    ch.timers = [];
    ch.bot?.timers.forEach(clearTimeout);
  }

  // ---- api (both kinds of connection) ----

  private api(line: string): string {
    const [command = '', ...args] = line.split(' ').filter((a) => a !== '');
    const ch = args[0] ? this.channels.get(args[0]) : undefined;
    const live = ch && ch.state !== 'hungup' ? ch : undefined;
    const noChannel = '-ERR No such channel!\n';
    switch (command) {
      case 'status':
        return `UP 0 years, 0 days, 0 hours, 1 minute, 0 seconds, 0 milliseconds, 0 microseconds\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n${this.channels.size} session(s) since startup\n`;
      case 'global_setvar': {
        const [name = '', ...value] = args.join(' ').split('=');
        this.globals.set(name.trim(), value.join('=').trim());
        return '+OK';
      }
      case 'global_getvar': return this.globals.get(args[0] ?? '') ?? '-ERR no reply\n';
      case 'xml_locate': {
        // `xml_locate dialplan context name <name>`: the context's XML, or this (FreeSWITCH 1.10.12).
        const name = args[0] === 'dialplan' && args[1] === 'context' && args[2] === 'name' ? args[3] ?? '' : '';
        if (!this.dialplanContexts.has(name)) return "can't find anything\n";
        const xml = freeswitchContextXml(name) ?? `<context name="${name}">\n</context>\n`;
        return name === 'twin-after-socket' && !this.afterSocketHasBotFailed ? xml.replace(/<extension name="bot_failed">[\s\S]*?<\/extension>/, '') : xml;
      }
      case 'sofia': return this.sofia(args);
      case 'uuid_getvar':
        if (!live) return noChannel;
        return live.vars.get(args[1] ?? '') ?? '_undef_';
      case 'uuid_setvar':
        if (!live) return noChannel;
        this.setVar(live, args[1] ?? '', args.slice(2).join(' '));
        return '+OK\n';
      case 'uuid_exists': return live ? 'true' : 'false';
      case 'uuid_setvar_multi': {
        if (!live) return noChannel;
        // The line after the uuid, split as FreeSWITCH does (quotes dropped, `\x` unescaped, h1).
        const list = line.slice(line.indexOf(args[0]!) + args[0]!.length + 1);
        for (const pair of fsSeparateString(list, ';')) {
          const [name = '', ...value] = pair.split('=');
          if (name) this.setVar(live, name, value.join('='));
        }
        return '+OK\n';
      }
      case 'uuid_break':
        if (!live) return noChannel;
        // CF_BREAK stays set until an app reads it: a break just before the playback starts ends it at once (h5).
        if (!live.running) live.pendingBreak = true;
        if (live.running && BREAKABLE.has(live.running.app)) {
          live.running.interrupt?.();
          live.running = undefined;
          this.later(live, () => this.runQueue(live), 0);
        }
        return '+OK\n';
      case 'uuid_transfer': {
        if (!live) return args[0] ? noChannel : '-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n';
        const rest = args.slice(1).filter((a) => !a.startsWith('-'));
        const destination = { extension: rest[0] ?? '', context: rest[2] ?? 'default' };
        // A static socket holds the caller's thread: the transfer happens when `socket` returns (p9).
        if (live.state === 'socket' && live.session?.mode === 'static' && !live.session.closed) live.pendingTransfer = destination;
        else this.later(live, () => this.transfer(live, destination.extension, destination.context), 0);
        return '+OK\n';
      }
      case 'uuid_kill':
        if (!args[0]) return '-USAGE: <uuid> [cause]\n';
        if (!live) return noChannel;
        live.pendingHangup = args[1] ?? 'NORMAL_CLEARING'; // the channel is down at once, whatever returns next
        this.later(live, () => this.appHangup(live, live.pendingHangup!), 0);
        return '+OK\n';
      default:
        return `-ERR ${command} Command not found!\n`;
    }
  }

  /**
   * `sofia status gateway <name>`, as mod_sofia.c's cmd_status prints it (FreeSWITCH 1.10): the
   * gateway between two rules, or `Invalid Gateway!`. Other sofia commands are not modelled.
   */
  private sofia(args: string[]): string {
    if (args[0] !== 'status' || args[1] !== 'gateway') return '-ERR the simulator knows only `sofia status gateway <name>`\n';
    if (args.length < 3) return 'Invalid Syntax!\n';
    const name = args[2]!;
    const proxy = this.gateways.get(name);
    if (proxy === undefined) return 'Invalid Gateway!\n';
    const rule = '='.repeat(97);
    const row = (key: string, value: string | number) => `${key}\t${value}\n`;
    return `${rule}\n${row('Name    ', name)}${row('Profile ', 'external')}${row('Scheme  ', 'Digest')}${row('Realm   ', proxy)}`
      + `${row('Username', 'twin')}${row('Password', 'no')}${row('From    ', `<sip:twin@${proxy}>`)}${row('Contact ', `<sip:gw+${name}@127.0.0.1:5080;transport=udp;gw=${name}>`)}`
      + `${row('Exten   ', 'twin')}${row('To      ', `sip:twin@${proxy}`)}${row('Proxy   ', `sip:${proxy}`)}${row('Context ', 'public')}`
      + `${row('Expires ', '3600')}${row('Freq    ', 3600)}${row('Ping    ', 0)}${row('PingFreq', 0)}${row('PingState', '0/0/0')}`
      + `${row('State   ', 'NOREG')}${row('Status  ', 'UP')}${row('CallsIN ', 0)}${row('CallsOUT', 0)}${rule}\n`;
  }

  // ---- bgapi originate ----

  private backgroundJob(jobUuid: string, line: string): void {
    const [command = '', ...rest] = line.split(' ');
    if (command !== 'originate') return this.finishJob(jobUuid, command, rest.join(' '), this.api(line));
    this.originate(jobUuid, rest.join(' '));
  }

  /**
   * `originate {vars}<dial> &socket(host:port async full)`: the subscriber answers or fails as
   * subscriberBehaviour says. Answered, the channel connects to the socket target like a dialplan
   * call; the job's body is `+OK <uuid>` after the answer, or `-ERR <CAUSE>` (fixture d2).
   */
  private originate(jobUuid: string, arg: string): void {
    const [aleg = '', exten = ''] = splitApiArgs(arg);
    const { vars, endpoint } = parseDialString(aleg);
    const app = originateApp(exten);
    const socketArg = app?.app === 'socket' ? /^([^:\s]+):(\d+)/.exec(app.arg) : null;
    const uuid = vars.get('origination_uuid') ?? randomUUID();
    const to = endpoint.split('/').pop() ?? '';
    const from = vars.get('origination_caller_id_number') ?? '0000000000';
    const fail = (cause: string) => () => {
      this.finishJob(jobUuid, 'originate', arg, `-ERR ${cause}\n`);
      finishDial({ kind: 'hungup-by-caller', vars: {} });
    };
    let finishDial: (r: CallerResult) => void = () => {};
    const socketTarget = socketArg ? `${socketArg[1]}:${socketArg[2]}` : undefined;
    const dial: SimDial = { id: uuid, to, from, socketTarget, left: new Promise((resolve) => { finishDial = resolve; }), hangup: () => {} };
    this.dials.push(dial);
    if (!socketArg) return this.later0(fail('INVALID_GATEWAY'), 1);
    const b = this.subscriberBehaviour(to);
    switch (b.kind) {
      case 'busy': return this.later0(fail('USER_BUSY'), b.afterMs ?? 5);
      case 'unavailable': return this.later0(fail('NORMAL_TEMPORARY_FAILURE'), b.afterMs ?? 5);
      case 'no-answer': return this.later0(fail('NO_ANSWER'), Number(vars.get('originate_timeout') ?? '60') * 1000);
      case 'answer':
        return this.later0(() => {
          const call = this.openChannel(uuid, { name: vars.get('origination_caller_id_name') ?? from, number: from }, to, vars,
            { host: socketArg[1]!, port: Number(socketArg[2]), mode: socketMode(app!.arg) }, true, true);
          Object.assign(dial, { left: call.left, hangup: call.hangup });
          void call.left.then(finishDial);
          this.finishJob(jobUuid, 'originate', arg, `+OK ${uuid}\n`);
        }, b.afterMs ?? 5);
    }
  }

  /**
   * The shipped dialplan's lines after `socket`: fire CUSTOM twin::not_taken (the product counts
   * it over its inbound connection), then the fallback.
   */
  private afterSocketFailed(ch: FsChannel, vars: Record<string, string>): void {
    this.publishInbound(customEvent('twin::not_taken', ch.uuid));
    this.end(ch, 'NORMAL_CLEARING', { kind: 'app-unavailable', vars });
  }

  /**
   * `socket` returned after the bot hung up a call the product had handed over (its socket closed
   * while bridged, e2): the shipped twin-after-socket `released` extension fires twin::bot_hangup
   * and runs the route's after_bot_hangup from the twin_after_* variables.
   */
  private afterHandedOverBotHangup(ch: FsChannel): void {
    if (ch.vars.get('twin_next_step') !== 'released') return this.afterSocketFailed(ch, { socket_lost: 'true' });
    this.publishInbound(eventHeaders(ch, 'CUSTOM', 'CS_EXECUTE', [['Event-Subclass', 'twin::bot_hangup']]));
    if (ch.vars.get('twin_after_bot') === 'continue') {
      ch.vars.delete('force_transfer_context');
      ch.vars.delete('bridge_pre_execute_aleg_app');
      this.transfer(ch, ch.vars.get('twin_after_extension') ?? 's', ch.vars.get('twin_after_context') ?? 'default');
    } else {
      const cause = ch.vars.get('twin_after_cause') ?? 'NORMAL_CLEARING';
      this.hangup(ch, cause, { kind: 'hungup-by-app', reasonCode: String(causeCode(cause) ?? ''), reason: cause, vars: {} });
    }
  }

  /** An event to every inbound connection that subscribed to it and whose filters let it through. */
  private publishInbound(headers: Headers, body?: string): void {
    for (const [socket, sub] of this.subscriptions) {
      if (socket.destroyed || !inboundWants(sub, headers)) continue;
      socket.write(sub.format === 'json' ? jsonEvent(headers, body) : plainEvent(headers, body));
    }
  }

  private later0(fn: () => void, ms: number): void {
    const timer = setTimeout(() => { this.jobTimers.delete(timer); fn(); }, ms);
    this.jobTimers.add(timer);
  }

  private finishJob(jobUuid: string, command: string, arg: string, body: string): void {
    const headers: Headers = [
      ['Event-Name', 'BACKGROUND_JOB'], ['Core-UUID', CORE_UUID], ['FreeSWITCH-Hostname', 'fslab'],
      ['Event-Date-Timestamp', String(Date.now() * 1000)], ['Event-Calling-File', 'mod_event_socket.c'],
      ['Job-UUID', jobUuid], ['Job-Command', command], ['Job-Command-Arg', arg],
    ];
    this.publishInbound(headers, body);
  }

  // ---- inbound connections (product → FreeSWITCH :8021) ----

  /** Replies still held back per inbound connection: they go out in order. */
  private readonly heldReplies = new Map<Socket, Promise<void>>();

  private replyInbound(socket: Socket, bytes: string, delayMs: number): void {
    const held = this.heldReplies.get(socket);
    if (delayMs <= 0 && !held) return void socket.write(bytes);
    const next = (held ?? Promise.resolve())
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, delayMs)))
      .then(() => { if (!socket.destroyed) socket.write(bytes); });
    this.heldReplies.set(socket, next);
    void next.then(() => { if (this.heldReplies.get(socket) === next) this.heldReplies.delete(socket); });
  }

  private subscription(socket: Socket): InboundSubscription {
    let sub = this.subscriptions.get(socket);
    if (!sub) this.subscriptions.set(socket, (sub = { format: 'plain', events: new Set(), subclasses: new Set(), filters: [] }));
    return sub;
  }

  private acceptInbound(socket: Socket): void {
    if (this.restarting) return void socket.destroy();
    this.inbound.add(socket);
    socket.setNoDelay(true);
    let authed = false;
    const reader = new CommandReader();
    socket.write(authRequest());
    socket.on('error', () => {});
    socket.on('close', () => {
      this.inbound.delete(socket);
      this.subscriptions.delete(socket);
    });
    socket.on('data', (chunk) => {
      for (const cmd of reader.push(chunk)) {
        this.inboundCommands++;
        this.onInboundCommand?.(cmd.line);
        const [verb = '', ...args] = cmd.line.split(' ');
        if (verb === 'auth') {
          if (args.join(' ') === this.password) {
            authed = true;
            socket.write(commandReply('+OK accepted'));
          } else {
            socket.write(commandReply('-ERR invalid'));
            socket.end(disconnectNotice()); // d1
          }
        } else if (!authed) {
          socket.write(commandReply('-ERR command not found')); // d1b: stays open
        } else if (verb === 'api') {
          this.replyInbound(socket, apiResponse(this.api(args.join(' '))), this.delayInboundApi?.(args.join(' ')) ?? 0);
        } else if (verb === 'bgapi') {
          const jobUuid = cmd.headers.get('job-uuid') ?? randomUUID();
          socket.write(commandReply(`+OK Job-UUID: ${jobUuid}`, [['Job-UUID', jobUuid]]));
          this.backgroundJob(jobUuid, args.join(' '));
        } else if (verb === 'event' || verb === 'myevents') {
          const sub = this.subscription(socket);
          sub.format = args[0] === 'json' ? 'json' : 'plain';
          const names = args.slice(1);
          const custom = names.indexOf('CUSTOM');
          (custom >= 0 ? names.slice(0, custom) : names).forEach((name) => sub.events.add(name));
          if (custom >= 0) names.slice(custom + 1).forEach((subclass) => sub.subclasses.add(subclass));
          socket.write(commandReply(`+OK event listener enabled ${sub.format}`));
        } else if (verb === 'filter') {
          const [header = '', ...value] = args;
          this.subscription(socket).filters.push([header, value.join(' ')]);
          socket.write(commandReply(`+OK filter added. [${header}]=[${value.join(' ')}]`));
        } else if (verb === 'noevents') {
          socket.write(commandReply('+OK no longer listening for events'));
        } else if (verb === 'exit') {
          socket.write(commandReply('+OK bye'));
          socket.end(disconnectNotice());
        } else {
          socket.write(commandReply('-ERR command not found'));
        }
      }
    });
  }
}

interface InboundSubscription {
  format: 'json' | 'plain';
  /** Event names (BACKGROUND_JOB, CHANNEL_HANGUP_COMPLETE, ALL ...) and CUSTOM subclasses. */
  events: Set<string>;
  subclasses: Set<string>;
  /** `filter <header> <value>`: with any filter, an event passes only if one of them matches. */
  filters: [string, string][];
}

function inboundWants(sub: InboundSubscription, headers: Headers): boolean {
  const get = (name: string) => headers.find(([n]) => n === name)?.[1];
  const name = get('Event-Name') ?? '';
  const subscribed = name === 'CUSTOM' ? sub.subclasses.has(get('Event-Subclass') ?? '') : sub.events.has(name) || sub.events.has('ALL');
  return subscribed && (sub.filters.length === 0 || sub.filters.some(([header, value]) => get(header) === value));
}

function customEvent(subclass: string, uuid: string): Headers {
  return [['Event-Name', 'CUSTOM'], ['Core-UUID', CORE_UUID], ['Event-Subclass', subclass], ['Unique-ID', uuid]];
}
