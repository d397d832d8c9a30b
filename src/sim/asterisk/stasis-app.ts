/**
 * The Stasis app side of the simulated Asterisk: the event websocket our product opens, and every
 * event it sends down it. Events go only to a connected app (Asterisk does not queue them for an
 * absent one), through the app's event filter, and work Asterisk does after it has answered a
 * REST request waits in `afterReply` (recorded: a created channel's events can come before or
 * after the reply). Bottom layer of the simulator: it also holds the channels and bridges every
 * layer above works on (see README.md for the layers).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { SimulatedPbx } from '../simulated-pbx.js';
import { ASTERISK_ID, asteriskTime, channelJson, type AriSimOptions, type SimBridge, type SimChannel } from './model.js';

interface App {
  sockets: Set<WebSocket>;
  allowed?: Set<string>;
  disallowed?: Set<string>;
}

export abstract class StasisApp extends SimulatedPbx {
  constructor(protected readonly options: AriSimOptions) {
    super(Infinity);
    this.username = options.username ?? 'asterisk';
    this.password = options.password ?? 'asterisk';
  }

  readonly username: string;
  readonly password: string;
  private readonly wss = new WebSocketServer({ noServer: true });
  protected readonly apps = new Map<string, App>();
  protected readonly channels = new Map<string, SimChannel>();
  protected readonly bridges = new Map<string, SimBridge>();
  /** Event websockets opened so far (each reconnection of the product opens one). */
  websocketsOpened = 0;
  /** While true the websocket upgrade answers 503 "Asterisk not booted". */
  booting = false;

  /**
   * While true, events go nowhere though the app still looks connected: a websocket that died
   * without Asterisk noticing yet. Calls entering Stasis then wait for someone to pick them up.
   */
  losingEvents = false;
  /** Channels whose StasisStart reached an open websocket. */
  private readonly announced = new Set<string>();

  /** Work that real Asterisk does after it has answered the request. */
  protected readonly afterReply: (() => void)[] = [];

  /** Whether the app was told about this channel (a lost StasisStart leaves it unknown to the product). */
  wasAnnounced(channelId: string): boolean {
    return this.announced.has(channelId);
  }

  /** Sends a frame as is on the app's event websockets: an event type the api-docs lack, or not JSON at all. */
  sendRawFrame(text: string, appName = [...this.apps.keys()][0] ?? 'twin'): void {
    for (const ws of this.apps.get(appName)?.sockets ?? []) if (ws.readyState === ws.OPEN) ws.send(text);
  }

  /** Cut every event websocket without a close frame (code 1006), as when Asterisk dies. */
  dropWebSockets(): void {
    for (const app of this.apps.values()) app.sockets.forEach((ws) => ws.terminate());
  }

  protected upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const reject = (status: number, text: string, type = 'application/json') => {
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\n` +
        `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    };
    if (url.pathname !== '/ari/events') return reject(404, '{"message":"Resource not found"}');
    if (this.booting) return reject(503, '{"message":"Asterisk not booted"}');
    if (!this.authorized(req, url)) return reject(401, '{"message":"Authentication required"}');
    const appNames = (url.searchParams.get('app') ?? '').split(',').filter(Boolean);
    if (appNames.length === 0) return reject(400, '<html><body>HTTP request is missing param: [app]</body></html>', 'text/html');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.websocketsOpened += 1;
      for (const name of appNames) {
        const app = this.apps.get(name) ?? { sockets: new Set<WebSocket>() };
        this.apps.set(name, app);
        app.sockets.add(ws);
        ws.on('close', () => app.sockets.delete(ws));
      }
    });
  }

  protected authorized(req: IncomingMessage, url: URL): boolean {
    const expected = `${this.username}:${this.password}`;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) return Buffer.from(header.slice(6), 'base64').toString() === expected;
    return url.searchParams.get('api_key') === expected;
  }

  protected appConnected(name: string): boolean {
    return (this.apps.get(name)?.sockets.size ?? 0) > 0;
  }

  protected emit(appName: string | undefined, type: string, fields: Record<string, unknown>): void {
    if (appName === undefined) return;
    const app = this.apps.get(appName);
    if (!app || app.sockets.size === 0) return; // Asterisk does not queue events for an absent app
    if (this.losingEvents) return;
    if (app.disallowed?.has(type) || (app.allowed && app.allowed.size > 0 && !app.allowed.has(type))) return;
    const frame = JSON.stringify({ type, timestamp: asteriskTime(), ...fields, asterisk_id: ASTERISK_ID, application: appName });
    let delivered = false;
    for (const ws of app.sockets) {
      if (ws.readyState !== ws.OPEN) continue; // a socket being torn down: the event is lost
      ws.send(frame);
      delivered = true;
    }
    const channelId = (fields.channel as { id?: string } | undefined)?.id;
    if (delivered && type === 'StasisStart' && channelId !== undefined) this.announced.add(channelId);
  }

  protected emitVarset(ch: SimChannel, variable: string, value: string): void {
    this.emit(ch.app, 'ChannelVarset', { variable, value, channel: channelJson(ch) });
  }
}
