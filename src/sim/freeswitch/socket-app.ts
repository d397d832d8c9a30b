/**
 * FreeSWITCH's `socket` application: the outbound connection a caller's channel opens to the
 * product, the commands it answers (connect, myevents, linger, sendmsg, api, exit), static vs
 * async mode (recordings h1-h7: a static socket runs a sendmsg'd app inline, its +OK and events
 * wait until the app ends), the events a channel sends down it, and what happens when either
 * side closes it.
 */
import { createConnection } from 'node:net';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { callerExit, type CallerResult, type SimCall } from '../call-model.js';
import { appHeaders, channelData, eventHeaders, type FsChannel, type OutboundSession } from './channel.js';
import { apiResponse, commandReply, CommandReader, connectReply, disconnectNotice, jsonEvent, plainEvent, type AppCommand, type Headers, type SocketMode } from './wire.js';
import { callTimer } from '../simulated-pbx.js';
import { InboundConnections } from './inbound.js';

export abstract class SocketApp extends InboundConnections {
  protected readonly channels = new Map<string, FsChannel>();
  /** The product's outbound socket server, as in the dialplan's `socket host:port`. */
  socketTarget = { host: '127.0.0.1', port: 8084 };

  /** Channels whose socket got the product's `connect` while the caller was still there. */
  protected readonly announced = new Set<string>();
  /** ESL commands received per caller uuid, and on inbound connections. */
  readonly commands = new Map<string, number>();
  /** Every command on a call socket: its first line, and for a sendmsg the app and its argument (`multiset ^^|a=b|…`). */
  onCommand?: (uuid: string, line: string, app?: string) => void;
  private callCount = 0;

  /** A channel that runs `socket host:port [async] full`, answered or not. */
  protected openChannel(
    uuid: string, caller: { name: string; number: string }, dialed: string, vars: Map<string, string>,
    target: { host: string; port: number; mode?: SocketMode; full?: boolean }, answered: boolean, originated = false,
    dialplanContinues = false,
  ): SimCall {
    const { left, settle: finish } = callerExit();
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
  protected closeOutbound(ch: FsChannel, writeGoodbye: boolean): void {
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

  /** A static socket's thread is inside an app: what it sends waits until the app has ended (h7). */
  protected writeOrHold(ch: FsChannel, bytes: string): void {
    const session = ch.session;
    if (session?.mode === 'static' && session.waitingFor !== undefined) session.heldEvents.push(bytes);
    else this.write(ch, bytes);
  }

  protected write(ch: FsChannel, bytes: string): void {
    const s = ch.session;
    if (s && !s.closed && !s.socket.destroyed) s.socket.write(bytes);
  }

  private onOutboundCommand(ch: FsChannel, cmd: AppCommand): void {
    this.commands.set(ch.uuid, (this.commands.get(ch.uuid) ?? 0) + 1);
    const app = cmd.headers.get('execute-app-name');
    const appArg = cmd.headers.get('execute-app-arg') ?? cmd.body ?? '';
    this.onCommand?.(ch.uuid, cmd.line, app !== undefined ? `${app} ${appArg}` : undefined);
    if (ch.session?.socket.destroyed) return; // a test cut the connection as the command arrived: never read
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
  protected releaseStaticReply(ch: FsChannel, appUuid?: string): void {
    const session = ch.session;
    if (!session || session.waitingFor === undefined || (appUuid !== undefined && session.waitingFor !== appUuid)) return;
    session.waitingFor = undefined;
    this.write(ch, commandReply('+OK'));
    for (const bytes of session.heldEvents.splice(0)) this.write(ch, bytes);
    for (const cmd of session.backlog.splice(0)) this.onOutboundCommand(ch, cmd);
    if (session.productEnded && session.waitingFor === undefined) this.closeOutbound(ch, true);
  }

  protected later(ch: FsChannel, fn: () => void, ms = this.options.execDelayMs ?? 2): void {
    callTimer(ch.timers, ms, fn);
  }

  protected emitEvent(ch: FsChannel, name: string, state: string, extra: Headers = [], trailer: Headers = []): void {
    const session = ch.session;
    const format = session?.format ?? 'none';
    if (format === 'none' || !session || session.closed || session.nixed.has(name)) return;
    const headers = eventHeaders(ch, name, state, extra, trailer);
    const bytes = format === 'json' ? jsonEvent(headers) : plainEvent(headers);
    // A static socket's thread is inside the app: its events wait until the app has ended (h7).
    if (session.mode === 'static' && session.waitingFor !== undefined) session.heldEvents.push(bytes);
    else this.write(ch, bytes);
  }

  protected setVar(ch: FsChannel, name: string, value: string): void {
    ch.vars.set(name, value);
    this.onChannelVar?.(ch.uuid, name, value);
  }

  protected socketAppEnded(ch: FsChannel): void {
    this.emitEvent(ch, 'CHANNEL_UNPARK', 'CS_EXECUTE');
    this.emitEvent(ch, 'CHANNEL_EXECUTE_COMPLETE', 'CS_EXECUTE', [], appHeaders({ app: 'socket', arg: `${this.socketTarget.host}:${this.socketTarget.port} async full`, uuid: ch.uuid }, '_none_'));
  }

  /** A channel is forgotten once it has hung up and its socket is closed, as FreeSWITCH destroys it then. */
  protected forgetIfDone(ch: FsChannel): void {
    if (ch.state === 'hungup' && (!ch.session || ch.session.closed)) this.channels.delete(ch.uuid);
  }

  protected clearTimers(ch: FsChannel): void {
    ch.timers.forEach(clearTimeout);
    ch.timers = [];
    ch.bot?.timers.forEach(clearTimeout);
  }

  // Done by the layers above: channel-apps.ts, dialplan.ts, hangup-and-transfer.ts.
  protected abstract afterSocketFailed(ch: FsChannel, vars: Record<string, string>): void;
  protected abstract appHangup(ch: FsChannel, cause: string): void;
  protected abstract hangup(ch: FsChannel, cause: string, result: CallerResult): void;
  protected abstract runQueue(ch: FsChannel): void;
  protected abstract socketReturned(ch: FsChannel): void;
}
