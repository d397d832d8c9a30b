/**
 * The only module that uses drachtio-modesl (the maintained, API-compatible fork of modesl). It
 * gives the driver promises with timeouts instead of callbacks that may never come, and contains
 * these defects of the library:
 * - its parser decodes header values with decodeURIComponent, which throws inside the socket's
 *   data handler on a stray `%` (the linger notice's Channel-Name is sent raw) and would kill the
 *   process: header values are decoded leniently instead;
 * - its inbound connection reconnects by itself forever, without a cap on the delay and even after
 *   a wrong password: we turn that off and reconnect with our own backoff;
 * - its outbound Server does not handle `listen` errors: we listen ourselves and hand it the server;
 * - it announces an outbound connection as ready *before* it dispatches the `connect` reply, so a
 *   command sent from the ready handler gets the `connect` reply as its own, and every later reply
 *   is one off: the first command is sent after that dispatch instead;
 * - its parser throws from inside the socket's data handler on a malformed event (`<bad<xml>` in a
 *   text/event-xml body dereferences a failed parse), which would kill the process: a parse error
 *   is caught and reported as the parser's 'error', and the connection that sent it is closed;
 * - its Event adds each header after searching those it has (O(n²): a channel's ~200 headers cost
 *   more CPU than anything else the product does per call, issue 20): events are built in one pass.
 * - it writes each line of a command with a write() of its own (one TCP segment each, Nagle being
 *   off) and finds a header block's end byte by byte in JavaScript: one write per command, and
 *   Buffer.indexOf.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../../log.js';
import type { AllowedPeers } from './peers.js';
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import { TRANSFER_EVENTS, verdictOfSubclass } from './transfer.js';
import type { EslEvent } from './esl-event.js';

const require = createRequire(import.meta.url);
const esl = require('drachtio-modesl') as ModeslModule;
const Parser = require('drachtio-modesl/lib/esl/Parser.js') as { prototype: ParserPrototype };
const ModeslEventClass = require('drachtio-modesl/lib/esl/Event.js') as new () => ModeslEvent & {
  type: string; subclass: string | null; body: string;
};

interface ParserPrototype {
  _parseHeaderText(text: string): Record<string, unknown>;
  _parsePlainBody(text: string): Record<string, unknown>;
  _parseEvent(this: ModeslParser, headers: Record<string, unknown>, body: string): void;
  _onData(this: ModeslParser, data: Buffer): void;
}
interface ModeslParser {
  socket: Socket;
  /** Set once a parse failed: the rest of that stream cannot be framed any more. */
  failed?: boolean;
  emit(event: 'error', err: Error): void;
  emit(event: 'esl::event', ...args: unknown[]): void;
  on(event: 'error', listener: (err: Error) => void): void;
  _parsePlainBody(text: string): Record<string, unknown>;
}

interface ModeslEvent {
  headers: { name: string; value: string }[];
  getHeader(name: string): string | undefined;
  getBody(): string;
}
interface ModeslConnection {
  socket: Socket | null;
  parser: ModeslParser;
  /** Who waits for the next command/reply, in order (sendRecv pushes here). */
  cmdCallbackQueue: ((reply: ModeslEvent) => void)[];
  channelData: ModeslEvent | null;
  closing?: boolean;
  getInfo(): ModeslEvent | null;
  sendRecv(command: string, args: Record<string, string> | null, cb: (reply: ModeslEvent) => void): void;
  api(command: string, cb: (reply: ModeslEvent) => void): void;
  on(event: string, listener: (...args: never[]) => void): void;
  removeListener(event: string, listener: (...args: never[]) => void): void;
  once(event: string, listener: (...args: never[]) => void): void;
  removeAllListeners(): void;
  emit(event: 'error', err: Error): void;
}
interface ModeslModule {
  Connection: {
    prototype: { send(this: ModeslConnection, command: string, args?: Record<string, string> | null): void };
    new (host: string, port: number, password: string, ready: () => void): ModeslConnection;
    /** An outbound connection (FreeSWITCH connected to us): sends `connect` at once. */
    new (socket: Socket): ModeslConnection;
  };
}

Parser.prototype._parseHeaderText = function parseHeaderText(text: string): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    const name = colon >= 0 ? line.slice(0, colon) : line;
    const value = colon >= 0 ? lenientDecode(line.slice(colon + 2)) : '';
    headers[name] = name === 'Content-Length' ? parseInt(value, 10) : value;
  }
  return headers;
};

/** modesl's Event from header/value pairs, in one pass (its constructor searches before each add). */
function eventOf(data: Record<string, unknown>, body?: string): ModeslEvent {
  const event = new ModeslEventClass();
  event.type = String(data['Event-Name'] ?? '');
  event.subclass = (data['Event-Subclass'] as string | undefined) ?? null;
  event.body = body ?? (data._body as string | undefined) ?? '';
  for (const name of Object.keys(data)) if (name !== '_body') event.headers.push({ name, value: data[name] as string });
  return event;
}

const parseEventAsModeslDoes = Parser.prototype._parseEvent;

/** modesl's _parseEvent (Parser.js), the same messages out, without the O(n²) Event (XML, unused here: modesl's own). */
Parser.prototype._parseEvent = function parseEvent(this: ModeslParser, headers: Record<string, unknown>, body: string): void {
  if (headers['Content-Type'] === 'text/event-xml') return parseEventAsModeslDoes.call(this, headers, body);
  let data: Record<string, unknown> | undefined;
  if (headers['Content-Type'] === 'text/event-json') {
    try {
      data = JSON.parse(body) as Record<string, unknown>;
      if (data['Content-Length']) data['Content-Length'] = parseInt(String(data['Content-Length']), 10);
    } catch (err) {
      this.emit('error', err as Error);
    }
  } else if (headers['Content-Type'] === 'text/event-plain') {
    data = this._parsePlainBody(body);
  }
  const event = data ? eventOf(data) : eventOf(headers, body);
  const reply = event.getHeader('Reply-Text');
  if (reply) {
    if (reply.indexOf('-ERR') === 0) event.headers.push({ name: 'Modesl-Reply-ERR', value: reply.substring(5) });
    else if (reply.indexOf('+OK') === 0) event.headers.push({ name: 'Modesl-Reply-OK', value: reply.substring(4) });
  }
  this.emit('esl::event', event, headers, body);
};

/** modesl scans for the blank line byte by byte in JavaScript; Buffer.indexOf does it natively. */
(Parser.prototype as unknown as { _indexOfHeaderEnd(this: { buffer: Buffer }): number })._indexOfHeaderEnd = function indexOfHeaderEnd() {
  return this.buffer.indexOf('\n\n');
};

/**
 * modesl writes a command, each header line and the blank line with a write() each: with Nagle
 * off, one segment each, which FreeSWITCH reads one at a time. One write per command instead.
 */
esl.Connection.prototype.send = function send(this: ModeslConnection, command: string, args?: Record<string, string> | null): void {
  let text = `${command}\n`;
  if (args) for (const key of Object.keys(args)) text += `${key}: ${args[key]}\n`;
  try {
    this.socket?.write(`${text}\n`);
  } catch (err) {
    this.emit('error', err as Error);
  }
};

const parseData = Parser.prototype._onData;
Parser.prototype._onData = function onData(this: ModeslParser, data: Buffer): void {
  if (this.failed) return;
  try {
    parseData.call(this, data);
  } catch (err) {
    this.failed = true;
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
};

function lenientDecode(value: string): string {
  if (!value.includes('%')) return value; // most values: nothing to decode
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export class EslError extends Error {}

export type { EslEvent } from './esl-event.js';

const CHANNEL_EVENTS = [
  'CHANNEL_EXECUTE', 'CHANNEL_EXECUTE_COMPLETE', 'CHANNEL_BRIDGE', 'CHANNEL_HANGUP', 'CHANNEL_HANGUP_COMPLETE',
];

/**
 * What `myevents` subscribes to (mod_event_socket.c) minus CHANNEL_EVENTS. Each event carries every
 * channel variable (~7 KB): unsubscribed, a call sends ~45 KB instead of ~100 KB down its socket.
 */
const UNUSED_EVENTS = [
  'CHANNEL_ANSWER', 'CHANNEL_APPLICATION', 'CHANNEL_CREATE', 'CHANNEL_DATA', 'CHANNEL_DESTROY', 'CHANNEL_ORIGINATE',
  'CHANNEL_UUID', 'CHANNEL_OUTGOING', 'CHANNEL_PARK', 'CHANNEL_PROGRESS', 'CHANNEL_PROGRESS_MEDIA', 'CHANNEL_STATE',
  'CHANNEL_UNBRIDGE', 'CHANNEL_UNPARK', 'DETECTED_SPEECH', 'DTMF', 'NOTALK', 'TALK',
];

/** A command's reply with a bound; `pending` lets a closed socket fail every waiting command at once. */
function withTimeout<T>(
  what: string, timeoutMs: number, start: (done: (value: T) => void) => void, pending?: Set<(err: Error) => void>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      pending?.delete(fail);
      reject(err);
    };
    const timer = setTimeout(() => fail(new EslError(`FreeSWITCH did not answer "${what}" within ${timeoutMs} ms`)), timeoutMs);
    pending?.add(fail);
    start((value) => {
      clearTimeout(timer);
      pending?.delete(fail);
      resolve(value);
    });
  });
}

/**
 * One call's outbound socket (FreeSWITCH's `socket` app connected to us). Emits 'event' (EslEvent)
 * for the channel's events and disconnect notices, and 'end' once the socket is closed.
 */
export class CallSocket extends EventEmitter {
  private ended = false;
  private readonly pending = new Set<(err: Error) => void>();
  /**
   * `socket host:port full` runs in *static* mode: the caller's own thread serves this socket, so
   * a command acts at once, an app sent with sendmsg runs inline (its reply, and any event, comes
   * only when it ends), and closing the socket lets `socket` return into the dialplan at once.
   * With `async` (fixture a1), apps are queued for the channel's next 20 ms media tick (issue 20).
   */
  readonly mode: 'static' | 'async';

  constructor(private readonly conn: ModeslConnection, private readonly timeoutMs: number) {
    super();
    this.mode = conn.getInfo()?.getHeader('Socket-Mode') === 'static' ? 'static' : 'async';
    conn.on('esl::event::disconnect::notice', (event: ModeslEvent) => this.emit('event', wrap('DISCONNECT_NOTICE', event)));
    conn.on('esl::end', () => this.onEnd());
    conn.on('error', () => { /* a socket error is followed by 'esl::end' */ });
    if (!conn.socket) queueMicrotask(() => this.onEnd());
  }

  /**
   * The `connect` reply: the channel's data, variables included. Handed out once: modesl would
   * keep its ~170 headers for the whole call.
   */
  takeChannelData(): EslEvent {
    const data = wrap('CHANNEL_DATA', this.conn.getInfo()!);
    this.conn.channelData = null;
    return data;
  }

  /** A command with a command/reply (myevents, linger, sendmsg): resolves with its Reply-Text. */
  command(line: string, headers: Record<string, string> | null = null, timeoutMs = this.timeoutMs): Promise<string> {
    if (this.ended) return Promise.reject(new EslError('the call\'s ESL socket is closed'));
    return withTimeout(line, timeoutMs, (done) =>
      this.conn.sendRecv(line, headers, (reply) => done(reply.getHeader('Reply-Text') ?? '')), this.pending);
  }

  /**
   * `sendmsg` execute. Async socket: FreeSWITCH queues the app and answers +OK at once; the result
   * comes as events. Static socket: the app runs inline and the +OK comes when it has ended (p8), so
   * the reply is bounded by `replyTimeoutMs` (the app's own bound), not by the command timeout.
   */
  async execute(app: string, arg: string, eventUuid?: string, replyTimeoutMs = this.timeoutMs): Promise<void> {
    const headers: Record<string, string> = { 'call-command': 'execute', 'execute-app-name': app, 'execute-app-arg': arg };
    if (eventUuid) headers['event-uuid'] = eventUuid;
    const reply = await this.command('sendmsg', headers, this.mode === 'static' ? replyTimeoutMs : this.timeoutMs);
    if (!reply.startsWith('+OK')) throw new EslError(`FreeSWITCH refused ${app}: ${reply}`);
  }

  /**
   * `sendmsg` execute with the app's argument as a text/plain body, written at once. FreeSWITCH
   * reads a command's header lines one byte per read() (~2 µs a byte on the lab's FreeSWITCH: 2 KB
   * more in a command put 4.5 ms before the bot's INVITE), but a body in one read. On a static
   * socket the app runs inline at once, and the +OK comes when it has ended.
   */
  async executeWithBody(app: string, body: string): Promise<void> {
    if (this.ended) throw new EslError('the call\'s ESL socket is closed');
    const text = `sendmsg\ncall-command: execute\nexecute-app-name: ${app}\ncontent-type: text/plain\n`
      + `content-length: ${Buffer.byteLength(body)}\n\n${body}`;
    const reply = await withTimeout<string>(`sendmsg ${app}`, this.timeoutMs, (done) => {
      this.conn.cmdCallbackQueue.push((r) => done(r.getHeader('Reply-Text') ?? ''));
      this.conn.socket?.write(text);
    }, this.pending);
    if (!reply.startsWith('+OK')) throw new EslError(`FreeSWITCH refused ${app}: ${reply}`);
  }

  /**
   * myevents json, nixevent <what we do not use>, linger: what a socket that stays with its call
   * needs (an async socket from the start; a static one only when it keeps a bridge, see FsCall).
   * Sent together: FreeSWITCH answers them in order.
   */
  async subscribe(): Promise<void> {
    // Listened for only now: a socket that never subscribes gets no event (modesl's wildcard listeners cost CPU).
    for (const name of CHANNEL_EVENTS) {
      this.conn.on(`esl::event::${name}::*`, (event: ModeslEvent) => this.emit('event', wrap(name, event)));
    }
    await Promise.all([this.command('myevents json'), this.command(`nixevent ${UNUSED_EVENTS.join(' ')}`), this.command('linger')]);
  }

  /** An `api` command: runs at once (not queued behind the channel's apps); resolves with its body. */
  api(command: string): Promise<string> {
    if (this.ended) return Promise.reject(new EslError('the call\'s ESL socket is closed'));
    return withTimeout(`api ${command.split(' ')[0]}`, this.timeoutMs, (done) =>
      this.conn.api(command, (reply) => done(reply.getBody())), this.pending);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Half-closes: what FreeSWITCH still answers to commands already sent arrives, then it closes too. */
  close(): void {
    if (this.ended) return;
    this.conn.socket?.end();
  }

  private onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    for (const fail of [...this.pending]) fail(new EslError('the call\'s ESL socket closed'));
    this.emit('end');
    this.conn.removeAllListeners();
  }
}

function wrap(name: string, event: ModeslEvent): EslEvent {
  return {
    name,
    get: (header) => event.getHeader(header) ?? undefined, // modesl answers null for a missing header
    entries: () => event.headers.map((h) => [h.name, String(h.value)] as [string, string]),
  };
}

export interface CallSocketServerOptions {
  /** Bound on each command's reply. */
  timeoutMs: number;
  /** Bound on the `connect` reply: a peer that never sends channel data is closed after it. */
  connectTimeoutMs: number;
  log: Logger;
}

/** Most refused addresses logged one by one; past this, refusals are silent (a scan must not flood the log). */
const MAX_REFUSED_LOGGED = 256;

/**
 * Listens for FreeSWITCH's `socket` app; calls `onCall` once a socket is ready (connect + myevents).
 * Whoever connects is taken for FreeSWITCH and handed a call flow, so a peer is checked against
 * the allow-list before a byte is sent, must answer `connect` in time, and is closed on bytes that
 * are not ESL.
 */
export class CallSocketServer {
  private readonly server = createServer();
  private peers?: AllowedPeers;
  private readonly refusedLogged = new Set<string>();

  /** `onCall` gets every socket that sent channel data; `ready` is false when the set-up failed (caller gone). */
  constructor(private readonly onCall: (socket: CallSocket, ready: boolean) => void, private readonly options: CallSocketServerOptions) {}

  async listen(host: string, port: number, peers: AllowedPeers): Promise<void> {
    this.peers = peers;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new EslError(`cannot listen for FreeSWITCH on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`)));
      this.server.listen(port, host, () => resolve());
    });
    this.server.on('error', () => { /* after listening, errors belong to single sockets */ });
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
  }

  get port(): number {
    return (this.server.address() as { port: number } | null)?.port ?? 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: Socket): void {
    socket.on('error', () => { /* reported by the connection, or the socket is being refused */ });
    const peer = socket.remoteAddress;
    if (!this.peers?.allows(peer)) return this.refuse(socket, peer);
    // modesl writes a command line by line: without this, Nagle + delayed ACK stall each command ~40 ms.
    socket.setNoDelay(true);
    this.closeUnlessConnectReply(socket, peer); // before modesl's parser: bad bytes never reach it
    const conn = new esl.Connection(socket);
    this.closeOnParseError(conn, peer);
    const { connectTimeoutMs } = this.options;
    const timer = setTimeout(() => {
      this.options.log.warn({ peer, connectTimeoutMs }, 'a FreeSWITCH call socket did not answer `connect` in time; closing it');
      socket.destroy();
    }, connectTimeoutMs);
    conn.once('esl::end', () => clearTimeout(timer));
    conn.once('esl::ready', () => {
      clearTimeout(timer);
      this.accept(conn);
    });
  }

  private refuse(socket: Socket, peer: string | undefined): void {
    socket.destroy();
    const key = peer ?? 'unknown';
    if (this.refusedLogged.has(key) || this.refusedLogged.size >= MAX_REFUSED_LOGGED) return;
    this.refusedLogged.add(key);
    this.options.log.warn({ peer: key }, 'refused a connection to the FreeSWITCH call socket: address not in freeswitch.allowed_peers');
  }

  /**
   * FreeSWITCH answers our `connect` before anything else, so the first bytes that cannot be that
   * reply close the socket at once instead of at connectTimeoutMs. Checked up to the reply's end.
   */
  private closeUnlessConnectReply(socket: Socket, peer: string | undefined): void {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const verdict = judgeConnectReply(head);
      if (verdict === 'pending') return;
      socket.off('data', onData);
      head = '';
      if (verdict === 'reply') return;
      socket.destroy();
      // The peer's bytes are a stranger's: only that they were refused is logged.
      this.options.log.warn({ peer }, 'a FreeSWITCH call socket sent bytes that cannot be its `connect` reply; closing it');
    };
    socket.on('data', onData);
  }

  /** Bytes that are not ESL: that socket is not (or no longer) a sane FreeSWITCH; the others go on. */
  private closeOnParseError(conn: ModeslConnection, peer: string | undefined): void {
    const socket = conn.socket;
    let logged = false;
    conn.parser.on('error', (err: Error) => {
      conn.parser.failed = true;
      socket?.destroy();
      if (logged) return;
      logged = true;
      // The error's message may quote the peer's bytes: only its kind is logged.
      this.options.log.warn({ peer, err: err.name }, 'a FreeSWITCH call socket sent an event that cannot be parsed; closing it');
    });
  }

  private accept(conn: ModeslConnection): void {
    const socket = new CallSocket(conn, this.options.timeoutMs);
    // A static socket (the shipped dialplan) is ready at once: the product needs no event from it
    // before it hands the caller back; without `linger`, FreeSWITCH closes it when the caller hangs
    // up (p7), which is all the warm-up needs to know. An async one (originated calls, an older
    // dialplan) stays with its call: JSON events (no URL decoding, every value a string, fixture
    // a2), and `linger` so the final events arrive. Sent once modesl has dispatched the connect
    // reply (see the header comment).
    queueMicrotask(() => {
      if (socket.mode === 'static') return this.onCall(socket, !socket.isEnded);
      socket.subscribe().then(
        () => this.onCall(socket, true),
        () => {
          socket.close();
          this.onCall(socket, false);
        },
      );
    });
  }
}

/** Anything but LF and printable bytes: FreeSWITCH URL-encodes the reply's values and ends lines with LF alone. */
const NOT_IN_A_REPLY = /[\x00-\x09\x0b-\x1f\x7f]/;

/**
 * Whether the first bytes of a call socket can be FreeSWITCH's `connect` reply: a header block
 * (`Name: value` lines, ended by an empty line) with `Content-Type: command/reply` and
 * `Event-Name: CHANNEL_DATA`. 'pending' while they still may be; 'not-esl' once they cannot.
 */
function judgeConnectReply(head: string): 'pending' | 'reply' | 'not-esl' {
  const end = head.indexOf('\n\n');
  const block = end === -1 ? head : head.slice(0, end);
  if (NOT_IN_A_REPLY.test(block)) return 'not-esl';
  const lines = block.split('\n');
  if (end === -1) lines.pop(); // a line still arriving
  // FreeSWITCH writes every header as `Name: value`, an empty value included.
  if (!lines.every((line) => line.includes(': '))) return 'not-esl';
  if (end === -1) return 'pending';
  const has = (header: string) => lines.includes(header);
  return has('Content-Type: command/reply') && has('Event-Name: CHANNEL_DATA') ? 'reply' : 'not-esl';
}

/** Fired by the shipped dialplan after `socket` when the product did not take the call. */
export const NOT_TAKEN_EVENT = 'twin::not_taken';
/** Fired by the shipped dialplan when the bot hung up a call the product had handed over. */
export const BOT_HANGUP_EVENT = 'twin::bot_hangup';
/** Fired by the shipped dialplan (twin-after-socket `bot_failed`) when the bot's leg was not answered. */
export const BOT_FAILED_EVENT = 'twin::bot_failed';
/**
 * twin_next_step of the calls the product follows over this connection: bot_failed (handed back,
 * the bot leg not answered yet), released (answered, or a bridged call handed over).
 */
export const FOLLOWED_STEPS = ['bot_failed', 'released'];
/**
 * twin_next_step as the shipped dialplan sets it before `socket`. Its hang-ups come through too: one
 * without socket_host (set by the socket app as it starts, mod_event_socket.c) never reached us.
 */
export const NOT_TAKEN_STEP = 'not_taken';
/** The inbound connection's filters and subscription (any filter matching lets an event through). */
export const INBOUND_FILTERS = [
  'Event-Name BACKGROUND_JOB', `Event-Subclass ${NOT_TAKEN_EVENT}`, `Event-Subclass ${BOT_HANGUP_EVENT}`, `Event-Subclass ${BOT_FAILED_EVENT}`,
  ...TRANSFER_EVENTS.map((subclass) => `Event-Subclass ${subclass}`), ...[...FOLLOWED_STEPS, NOT_TAKEN_STEP].map((step) => `variable_twin_next_step ${step}`),
];
const CUSTOM_SUBCLASSES = [NOT_TAKEN_EVENT, BOT_HANGUP_EVENT, BOT_FAILED_EVENT, ...TRANSFER_EVENTS];
export const INBOUND_EVENTS = `BACKGROUND_JOB CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CUSTOM ${CUSTOM_SUBCLASSES.join(' ')}`;

/**
 * A caller of the shipped dialplan who hung up before its `socket` ran: the dialplan stopped there,
 * so neither the product nor twin-after-socket's not_taken ever saw the call.
 */
function hungUpBeforeSocket(event: ModeslEvent): boolean {
  return event.getHeader('variable_twin_next_step') === NOT_TAKEN_STEP && !event.getHeader('variable_socket_host');
}

/** An inbound ESL connection (host:port, password) for API commands such as global_setvar. */
export class EslControl extends EventEmitter {
  private constructor(private readonly conn: ModeslConnection, private readonly timeoutMs: number) {
    super();
    this.setMaxListeners(0); // one 'end' listener per running bgapi (originate)
  }

  /** Connects and authenticates; rejects with a plain-words reason. Emits 'end' when the connection is lost. */
  static connect(host: string, port: number, password: string, timeoutMs: number): Promise<EslControl> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (reason: string) => {
        conn.closing = true; // no reconnect of modesl's own: the driver decides
        conn.socket?.destroy();
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new EslError(reason));
        }
      };
      const conn = new esl.Connection(host, port, password, () => {
        // Originate results come as BACKGROUND_JOB events; modesl asks for none on inbound connections.
        // The shipped dialplan fires CUSTOM twin::not_taken for a call its `socket` could not hand us.
        // A call handed back to the dialplan (twin_next_step bot_failed, then released) is
        // followed here: CHANNEL_BRIDGE (the bot answered), twin::bot_failed, twin::bot_hangup, and
        // CHANNEL_HANGUP_COMPLETE (its end). twin-transfers.xml fires twin::transferred,
        // twin::transfer_refused, twin::transfer_failed for the bot's REFER. Filters (any one
        // matching lets an event through) keep every other channel's events away.
        for (const filter of INBOUND_FILTERS) conn.sendRecv(`filter ${filter}`, null, () => {});
        conn.sendRecv(`event json ${INBOUND_EVENTS}`, null, () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const control = new EslControl(conn, timeoutMs);
          conn.on('esl::end', () => { conn.closing = true; control.emit('end'); });
          conn.on('esl::event::CUSTOM::*', (event: ModeslEvent) => {
            const subclass = event.getHeader('Event-Subclass');
            const uuid = event.getHeader('Unique-ID');
            if (subclass === NOT_TAKEN_EVENT) control.emit('not-taken', uuid);
            else if (subclass === BOT_HANGUP_EVENT) control.emit('bot-hangup', uuid);
            else if (subclass === BOT_FAILED_EVENT) control.emit('bot-failed', uuid, wrap('CUSTOM', event));
            else if (verdictOfSubclass(subclass)) control.emit('transfer', uuid, verdictOfSubclass(subclass), wrap('CUSTOM', event));
          });
          const followed = (event: ModeslEvent) => FOLLOWED_STEPS.includes(event.getHeader('variable_twin_next_step') ?? '');
          conn.on('esl::event::CHANNEL_BRIDGE::*', (event: ModeslEvent) => {
            if (followed(event)) control.emit('bridge', event.getHeader('Unique-ID'), wrap('CHANNEL_BRIDGE', event));
          });
          conn.on('esl::event::CHANNEL_HANGUP_COMPLETE::*', (event: ModeslEvent) => {
            if (followed(event)) control.emit('hangup-complete', event.getHeader('Unique-ID'), wrap('CHANNEL_HANGUP_COMPLETE', event));
            else if (hungUpBeforeSocket(event)) control.emit('not-taken', event.getHeader('Unique-ID'), 'caller-left-first');
          });
          resolve(control);
        });
      });
      conn.socket?.setNoDelay(true);
      const timer = setTimeout(() => fail(`FreeSWITCH ESL at ${host}:${port} did not answer within ${timeoutMs} ms`), timeoutMs);
      conn.on('esl::event::auth::fail', () => fail(`FreeSWITCH ESL at ${host}:${port} refused the password (see event_socket.conf.xml)`));
      conn.on('error', (err: NodeJS.ErrnoException) => fail(`cannot reach FreeSWITCH ESL at ${host}:${port}: ${err.code === 'ECONNREFUSED' ? 'connection refused' : err.message}`));
      conn.on('esl::end', () => fail(`FreeSWITCH ESL at ${host}:${port} closed the connection`));
    });
  }

  api(command: string): Promise<string> {
    return withTimeout(`api ${command.split(' ')[0]}`, this.timeoutMs, (done) => this.conn.api(command, (reply) => done(reply.getBody())));
  }

  /**
   * `bgapi` with our own Job-UUID (honoured by FreeSWITCH, fixture d2): resolves with the
   * BACKGROUND_JOB body. Bounded by `timeoutMs`, and fails at once if the connection is lost.
   */
  bgapi(command: string, jobUuid: string, timeoutMs: number): Promise<string> {
    const verb = command.split(' ')[0];
    return new Promise((resolve, reject) => {
      const eventName = `esl::event::BACKGROUND_JOB::${jobUuid}`;
      const finish = () => {
        clearTimeout(timer);
        this.conn.removeListener(eventName, onJob);
        this.off('end', onEnd);
      };
      const onJob = (event: ModeslEvent) => { finish(); resolve(event.getBody()); };
      const fail = (reason: string) => { finish(); reject(new EslError(reason)); };
      const onEnd = () => fail(`the ESL connection was lost before "bgapi ${verb}" finished`);
      const timer = setTimeout(() => fail(`FreeSWITCH did not finish "bgapi ${verb}" within ${timeoutMs} ms`), timeoutMs);
      this.conn.on(eventName, onJob);
      this.once('end', onEnd);
      this.conn.sendRecv(`bgapi ${command}`, { 'Job-UUID': jobUuid }, (reply) => {
        const text = reply.getHeader('Reply-Text') ?? '';
        if (!text.startsWith('+OK')) fail(`FreeSWITCH refused "bgapi ${verb}": ${text}`);
      });
    });
  }

  close(): void {
    this.conn.closing = true;
    this.conn.socket?.end();
  }
}
