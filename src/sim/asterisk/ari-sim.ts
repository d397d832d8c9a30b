/**
 * Asterisk ARI simulator: REST + WebSocket on loopback, serving the api-docs recorded from a real
 * Asterisk 22 so that ari-client connects to it unmodified. It reproduces the recorded behaviours
 * our driver depends on (see shared/fixtures/asterisk/README.md, "Behaviours a faithful fake ARI
 * must reproduce"): events for a created channel before the REST reply, no final Dial event for a
 * failed create+dial (the cause is in ChannelDestroyed), no ChannelDestroyed for a caller that
 * leaves Stasis, app DELETE = cause 32 soft, 409 for Custom: device states, error bodies, and the
 * ChannelVarset noise of a real call (about 33 per call) unless the app filters it out.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { closeServer, listen, readBody, sendJson } from '../http-util.js';
import {
  ASTERISK_ID, asteriskTime, bridgeJson, buildInvite, channelJson, fromHeader,
  type BotBehaviour, type CallerResult, type SimBridge, type SimChannel, type SimInvite, type SimRefer,
} from './model.js';
import type { PersonBehaviour, SimCall, SimDial } from '../call-model.js';
import { asteriskBotDialGoesOn, asteriskTrunkCheck } from '../shipped-dialplan.js';

export type { BotBehaviour, CallerResult, SimCall, SimInvite, SimRefer };

/** NOTIFY sipfrag codes for the app's transfer_progress states (recordings refer-ari-only*). */
const PROGRESS_NOTIFY: Record<string, number | undefined> = {
  channel_progress: undefined, channel_answered: 200, channel_declined: 603, channel_unavailable: 503,
};

/** The recorded api-docs live beside this file in src/; the built copy in dist/ reads them from there. */
const API_DOCS_DIR = [new URL('./api-docs/', import.meta.url), new URL('../../../../src/sim/asterisk/api-docs/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((dir) => existsSync(dir)) ?? '';
const BRIDGE_TYPES = new Set(['mixing', 'holding', 'dtmf_events', 'proxy_media', 'video_sfu', 'video_single', 'sdp_label']);
const RTP_QOS_VARS = 15;

export interface AriSimOptions {
  username?: string;
  password?: string;
  /** PJSIP endpoints that exist (default twin and carrier); others fail allocation (500) and GET /endpoints answers 404. */
  endpoints?: readonly string[];
  /** Where a plain PJSIP/<endpoint> leg goes (the AOR contact). */
  contact?: string;
  /**
   * How long after its REST reply a created channel enters Stasis (StasisStart), ms; 0 or less:
   * before the reply. Until then `dial` answers 409 and `addChannel` 422 "Channel not in Stasis
   * application" (recording create-dial-race). Default: drawn from that recording.
   */
  stasisEntryDelayMs?: () => number;
  /** The context of the shipped bot dialplan (asterisk.dial_context; default twin-bot). */
  botDialContext?: string;
  /** Whether that Dial() has the `g` option; default: read from the shipped twin-bot.conf. */
  botDialGoesOn?: boolean;
  /**
   * Extensions of the contexts Asterisk's own transfer looks a Refer-To user up in (TRANSFER_CONTEXT,
   * else the bot endpoint's context from-twin). Default: the shipped [twin-transfers] example
   * (operator) and the recordings' from-twin (200; operator, as a lab would have it).
   */
  transferExtensions?: Record<string, string[]>;
  /** How long the dialplan behind a core transfer rings a person who does not answer, s (default 20). */
  transferRingTimeoutS?: number;
}

interface App {
  sockets: Set<WebSocket>;
  allowed?: Set<string>;
  disallowed?: Set<string>;
}

export interface PlaceCallOptions {
  number?: string;
  name?: string;
  dialed?: string;
  /** Stasis(app,args...) arguments after the app name. */
  args?: string[];
  app?: string;
}


export class AriSimulator {
  readonly username: string;
  readonly password: string;
  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly apps = new Map<string, App>();
  private readonly channels = new Map<string, SimChannel>();
  private readonly bridges = new Map<string, SimBridge>();
  private readonly globals = new Map<string, string>();
  private readonly deviceStates = new Map<string, string>();
  private readonly callerWaiters = new Map<string, (r: CallerResult) => void>();
  private readonly docs = new Map<string, string>();
  /** PJSIP endpoints pjsip.conf defines; a test may add or remove one while the product runs. */
  readonly pjsipEndpoints: Set<string>;
  /**
   * The dialplan DIALPLAN_EXISTS() looks in: context → literal extensions (priorities are not
   * modelled: an extension has them all). The shipped [twin-fallback] (s, agent), [twin-bot] (a
   * pattern: only the context is asked for), the transfer contexts and the lab's [from-caller].
   */
  readonly dialplan: Map<string, Set<string>>;
  private seq = 0;
  private readonly epoch = Math.floor(Date.now() / 1000);
  port = 0;
  /** Event websockets opened so far (each reconnection of the product opens one). */
  websocketsOpened = 0;
  /** While true the websocket upgrade answers 503 "Asterisk not booted". */
  booting = false;
  botBehaviour: (invite: SimInvite) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** How a subscriber called with ARI originate (PJSIP/<number>@<endpoint>) behaves; called once per dial. */
  subscriberBehaviour: (number: string) => BotBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** The person behind a transfer destination (context, extension) answers, rings on or is busy. */
  personBehaviour: (context: string, extension: string) => PersonBehaviour = () => ({ kind: 'answer', afterMs: 5 });
  /** Every REFER a bot sent, in order. */
  readonly refers: SimRefer[] = [];
  /** Every subscriber dialled with originate, in order; `left` resolves when its channel is gone. */
  readonly dials: SimDial[] = [];
  /** REST requests received: "METHOD /path-pattern" → count. */
  readonly requests = new Map<string, number>();
  private readonly byCall = new Map<string, number>();
  /** Every INVITE "sent" to the bot, in order (bounded by keepInvites). */
  readonly invites: SimInvite[] = [];
  keepInvites = Infinity;
  /** For the benchmark: called when a bot leg is dialled with (stasisStartAt, dialAt) of its caller. */
  onBotDial?: (callerStasisStartAt: number, dialAt: number, callerId: string) => void;
  /** For the benchmark: every REST request (after auth) and every channel variable set by the app. */
  /** Holds a reply back this many ms (the answer is computed when the request arrives). */
  delayReply?: (method: string, path: string) => number;
  /** Answers a request with this HTTP status (an error body) without carrying it out; undefined: handled as usual. */
  failRequest?: (method: string, path: string) => number | undefined;
  onRequest?: (method: string, path: string) => void;
  onChannelVar?: (channelId: string, variable: string, value: string) => void;

  constructor(private readonly options: AriSimOptions = {}) {
    this.username = options.username ?? 'asterisk';
    this.password = options.password ?? 'asterisk';
    this.pjsipEndpoints = new Set(options.endpoints ?? ['twin', 'carrier']);
    this.dialplan = new Map([
      ['twin-fallback', new Set(['s', 'agent'])], [options.botDialContext ?? 'twin-bot', new Set<string>()], ['from-caller', new Set(['100'])],
      ...Object.entries(this.transferContexts()).map(([context, extensions]) => [context, new Set(extensions)] as const),
    ]);
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<string> {
    this.port = await listen(this.server, port);
    return this.url;
  }

  async stop(): Promise<void> {
    for (const ch of this.channels.values()) ch.timers.forEach(clearTimeout);
    for (const app of this.apps.values()) app.sockets.forEach((ws) => ws.terminate());
    await closeServer(this.server);
  }

  // ---- test controls ----

  /** The shipped [from-customers]' trunk check, read from extensions.conf: it runs before Stasis(). */
  private readonly trunkCheck = asteriskTrunkCheck();
  private readonly shippedBotDialGoesOn = asteriskBotDialGoesOn();

  /** A call answered by the dialplan that runs Stasis(app, args...), unless its trunk check skips the product. */
  placeCall(opts: PlaceCallOptions = {}): SimCall {
    const appName = opts.app ?? [...this.apps.keys()][0] ?? 'twin';
    const id = this.nextId();
    const ch = this.newChannel(id, `PJSIP/caller-${this.hexSeq()}`, 'caller', {
      name: opts.name ?? 'Customer', number: opts.number ?? '+15551230000',
    });
    ch.state = 'Up';
    ch.answeredAt = performance.now(); // Answer(,i) before Stasis()
    ch.ringing = (opts.args ?? []).includes('ringback=dialplan'); // the shipped Playtones(ring) before Stasis()
    ch.dialplan = { context: 'from-caller', exten: opts.dialed ?? '100', priority: 4, app_name: 'Stasis', app_data: [appName, ...(opts.args ?? [])].join(',') };
    const left = new Promise<CallerResult>((resolve) => this.callerWaiters.set(id, resolve));
    const check = this.trunkCheck;
    if (check.skips(this.deviceStates.get(`Custom:${check.name}`))) {
      const { vars, ...target } = check.fallback;
      for (const [name, value] of Object.entries(vars)) ch.vars.set(name, value);
      this.finishCaller(ch, { kind: 'continued', ...target, vars: {} });
    } else if (!this.appConnected(appName)) {
      this.finishCaller(ch, { kind: 'app-unavailable', vars: { STASISSTATUS: 'FAILED' } });
    } else {
      this.channels.set(id, ch);
      ch.app = appName;
      ch.appArgs = opts.args ?? [];
      ch.stasisStartAt = performance.now();
      this.emit(appName, 'StasisStart', { args: ch.appArgs, channel: channelJson(ch) });
    }
    return { id, left, hangup: () => this.remoteHangup(id, 'caller') };
  }

  /**
   * While true, events go nowhere though the app still looks connected: a websocket that died
   * without Asterisk noticing yet. Calls entering Stasis then wait for someone to pick them up.
   */
  losingEvents = false;
  /** Channels whose StasisStart reached an open websocket. */
  private readonly announced = new Set<string>();

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

  /** Channels and bridges our app still holds: after a test this must be zero. */
  leftovers(): { channels: string[]; bridges: string[] } {
    return {
      channels: [...this.channels.values()].filter((c) => c.app !== undefined || c.role === 'created').map((c) => c.name),
      bridges: [...this.bridges.keys()],
    };
  }

  /** The bot leg the product created for this caller (the latest one), found by its originator. */
  botLegOf(callerId: string): SimChannel | undefined {
    return [...this.channels.values()].filter((ch) => ch.originatorId === callerId && ch.appArgs?.[0] === 'bot').at(-1);
  }

  channel(id: string): SimChannel | undefined {
    return this.channels.get(id);
  }

  /** Whether music on hold plays to this channel's bridge. */
  bridgeMoh(channelId: string): boolean {
    const bridgeId = this.channels.get(channelId)?.bridgeId;
    return (bridgeId ? this.bridges.get(bridgeId)?.moh : undefined) ?? false;
  }

  /** Names of the other channels in this channel's bridge (whom the caller talks to). */
  peersOf(channelId: string): string[] {
    const bridgeId = this.channels.get(channelId)?.bridgeId;
    const bridge = bridgeId ? this.bridges.get(bridgeId) : undefined;
    return (bridge?.channels ?? []).filter((id) => id !== channelId).map((id) => this.channels.get(id)?.name ?? id);
  }

  deviceState(name: string): string | undefined {
    return this.deviceStates.get(name);
  }

  /** Requests whose path or query named this caller (its channel, bridge or bot leg). */
  requestsNaming(callId: string): number {
    return this.byCall.get(callId) ?? 0;
  }

  totalRequests(): number {
    let n = 0;
    for (const v of this.requests.values()) n += v;
    return n;
  }

  // ---- websocket ----

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
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

  private appConnected(name: string): boolean {
    return (this.apps.get(name)?.sockets.size ?? 0) > 0;
  }

  private emit(appName: string | undefined, type: string, fields: Record<string, unknown>): void {
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

  private emitVarset(ch: SimChannel, variable: string, value: string): void {
    this.emit(ch.app, 'ChannelVarset', { variable, value, channel: channelJson(ch) });
  }

  // ---- HTTP ----

  private authorized(req: IncomingMessage, url: URL): boolean {
    const expected = `${this.username}:${this.password}`;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) return Buffer.from(header.slice(6), 'base64').toString() === expected;
    return url.searchParams.get('api_key') === expected;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const raw = await readBody(req);
    if (!this.authorized(req, url)) {
      return sendJson(res, 401, { message: 'Authentication required' }, { 'www-authenticate': 'Basic realm="Asterisk REST Interface"' });
    }
    const path = url.pathname.replace(/^\/ari/, '');
    if (path.startsWith('/api-docs/')) return this.serveDoc(req, res, path.slice('/api-docs/'.length));
    let body: Record<string, unknown> | undefined;
    if (raw) {
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return sendJson(res, 400, { message: 'Error parsing request body' });
      }
    }
    const q = url.searchParams;
    const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    this.count(req.method ?? 'GET', segs);
    this.onRequest?.(req.method ?? 'GET', path + url.search);
    const callId = /(\d{10}\.\d+)/.exec(path + url.search)?.[1];
    if (callId !== undefined && this.keepInvites > 0) this.byCall.set(callId, (this.byCall.get(callId) ?? 0) + 1);
    const failWith = this.failRequest?.(req.method ?? 'GET', path);
    const [status, answer] = failWith !== undefined ? [failWith, { message: 'Internal Server Error' }] : this.route(req.method ?? 'GET', segs, q, body);
    const delayMs = this.delayReply?.(req.method ?? 'GET', path) ?? 0;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs)); // answered as of its arrival, sent late
    res.setHeader('cache-control', 'no-cache, no-store');
    if (status === 204) {
      res.writeHead(204, { 'content-length': 0 });
      res.end();
    } else {
      sendJson(res, status, answer);
    }
    this.afterReply.splice(0).forEach((fn) => fn());
  }

  /** Work that real Asterisk does after it has answered the request. */
  private readonly afterReply: (() => void)[] = [];

  private count(method: string, segs: string[]): void {
    const pattern = segs.map((s, i) => (i === 1 && segs[0] !== 'asterisk' && segs[0] !== 'applications' && s !== 'create' ? '{id}' : s)).join('/');
    const key = `${method} /${pattern}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  private serveDoc(req: IncomingMessage, res: ServerResponse, file: string): void {
    let text = this.docs.get(file);
    if (text === undefined) {
      try {
        text = readFileSync(API_DOCS_DIR + file.replace(/[^a-zA-Z.]/g, ''), 'utf8');
      } catch {
        return sendJson(res, 404, { message: 'Resource not found' });
      }
      this.docs.set(file, text);
    }
    // basePath is built from the request's Host header (fixture resources.host-ari.example.test-9999.json).
    const body = text.replace(/"basePath":\s*"[^"]*"/, `"basePath":"http://${req.headers.host}/ari"`);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private route(method: string, s: string[], q: URLSearchParams, body?: Record<string, unknown>): [number, unknown] {
    const [resource, id, action] = s;
    if (method === 'GET' && resource === 'endpoints' && s.length === 3) return this.endpoint(id!, action!);
    const key = `${method} ${resource ?? ''}${id === undefined ? '' : id === 'create' ? '/create' : '/:id'}${action ? '/' + action : ''}`;
    switch (key) {
      case 'GET asterisk/:id': return id === 'info' ? [200, this.info()] : id === 'ping' ? [200, { ping: 'pong', timestamp: asteriskTime(), asterisk_id: ASTERISK_ID }] : this.notFound();
      case 'POST asterisk/:id': return id === 'variable' ? this.setGlobal(q) : this.notFound();
      case 'GET applications': return [200, [...this.apps.entries()].filter(([, a]) => a.sockets.size > 0).map(([n]) => this.appJson(n))];
      case 'GET applications/:id': return this.apps.has(id!) ? [200, this.appJson(id!)] : [404, { message: 'Application not found' }];
      case 'PUT applications/:id/eventFilter': return this.setFilter(id!, body);
      case 'GET deviceStates/:id': return [200, { name: id, state: this.deviceStates.get(id!) ?? 'UNKNOWN' }];
      case 'PUT deviceStates/:id': return id!.startsWith('Custom:') ? [409, { message: 'Uncontrolled device specified' }] : this.putDeviceState(id!, q);
      case 'GET channels': return [200, [...this.channels.values()].map(channelJson)];
      case 'POST channels': return this.originate(q, body);
      case 'POST channels/create': return this.createChannel(q, body);
      case 'GET channels/:id': return this.withChannel(id!, (ch) => [200, channelJson(ch)]);
      case 'DELETE channels/:id': return this.withChannel(id!, (ch) => this.appHangup(ch, q));
      case 'POST channels/:id/dial': return this.withStasisChannel(id!, (ch) => this.dial(ch, q));
      case 'POST channels/:id/continue': return this.withStasisChannel(id!, (ch) => this.continueChannel(ch, q));
      case 'POST channels/:id/ring': return this.withStasisChannel(id!, (ch) => { ch.ringing = true; return [204, undefined]; });
      case 'DELETE channels/:id/ring': return this.withStasisChannel(id!, (ch) => { ch.ringing = false; return [204, undefined]; });
      case 'POST channels/:id/moh': return this.withStasisChannel(id!, (ch) => { ch.moh = true; return [204, undefined]; });
      case 'DELETE channels/:id/moh': return this.withStasisChannel(id!, (ch) => { ch.moh = false; return [204, undefined]; });
      case 'POST channels/:id/variable': return this.withChannel(id!, (ch) => this.setVar(ch, q));
      case 'POST channels/:id/transfer_progress': return this.withChannel(id!, (ch) => this.transferProgress(ch, q));
      case 'GET channels/:id/variable': {
        const ch = this.channels.get(id!);
        if (!ch) return [404, { message: 'Provided channel was not found' }];
        const value = ch.vars.get(q.get('variable') ?? '');
        // Recorded (product-sigkill-restart): an unset variable is a 404, not an empty value.
        return value === undefined ? [404, { message: 'Provided variable was not found' }] : [200, { value }];
      }
      case 'GET bridges': return [200, [...this.bridges.values()].map(bridgeJson)];
      case 'POST bridges': return this.createBridge(q.get('bridgeId') ?? randomUUID(), q);
      case 'POST bridges/:id': return this.createBridge(id!, q);
      case 'GET bridges/:id': return this.withBridge(id!, (b) => [200, bridgeJson(b)]);
      case 'GET bridges/:id/variables': return this.bridgeVariables(id!, q);
      case 'DELETE bridges/:id': return this.withBridge(id!, (b) => this.destroyBridge(b));
      case 'POST bridges/:id/addChannel': return this.withBridge(id!, (b) => this.addChannels(b, q));
      case 'POST bridges/:id/removeChannel': return this.withBridge(id!, (b) => this.removeChannel(b, q));
      case 'POST bridges/:id/moh': return this.withBridge(id!, (b) => { b.moh = true; return [204, undefined]; });
      case 'DELETE bridges/:id/moh': return this.withBridge(id!, (b) => { b.moh = false; return [204, undefined]; });
      default:
        if (['channels', 'bridges', 'asterisk', 'applications', 'deviceStates'].includes(resource ?? '') && id === undefined) {
          return [405, { message: 'Invalid method' }];
        }
        return this.notFound();
    }
  }

  /**
   * GET /endpoints/{tech}/{resource}: the endpoint (recording f1: `{"technology":"PJSIP","resource":"twin",
   * "state":"online","channel_ids":[]}`), or 404 `{"message":"Endpoint not found"}` (Asterisk 22's
   * res/ari/resource_endpoints.c, ast_ari_endpoints_get).
   */
  private endpoint(tech: string, resource: string): [number, unknown] {
    if (tech !== 'PJSIP' || !this.pjsipEndpoints.has(resource)) return [404, { message: 'Endpoint not found' }];
    const channelIds = [...this.channels.values()].filter((c) => c.name.startsWith(`PJSIP/${resource}-`)).map((c) => c.id);
    return [200, { technology: 'PJSIP', resource, state: 'online', channel_ids: channelIds }];
  }

  /**
   * GET /bridges/{id}/variables?variables=…: Asterisk 20.20, 22.10 and 23.4 added it (recorded
   * api-docs, bridges.json). A name ending in `)` is a dialplan function read with no channel
   * (res/ari/resource_bridges.c, ast_ari_bridges_get_bridge_vars: ast_func_read2(NULL, …)); 500
   * "Unable to read provided function" when it fails. Values are split on commas outside
   * parentheses (ast_app_separate_args). Only DIALPLAN_EXISTS() is modelled; the sim's bridges
   * hold no variables of their own.
   */
  private bridgeVariables(bridgeId: string, q: URLSearchParams): [number, unknown] {
    if (!this.bridges.has(bridgeId)) return [404, { message: 'Provided bridge was not found' }];
    const names = splitOutsideParentheses(q.get('variables') ?? '').map((n) => n.trim());
    if (names.length === 0 || names.every((n) => n === '')) return [400, { message: 'At least one variable name is required' }];
    const variables: Record<string, string> = {};
    for (const name of names) {
      const value = name.endsWith(')') ? this.readFunction(name) : undefined;
      if (value === undefined) {
        return name.endsWith(')') ? [500, { message: 'Unable to read provided function' }] : [404, { message: 'Provided variable was not found' }];
      }
      variables[name] = value;
    }
    return [200, { variables }];
  }

  /** DIALPLAN_EXISTS(context[,extension[,priority]]) as funcs/func_dialplan.c answers it with no channel: '1' or '0'. */
  private readFunction(call: string): string | undefined {
    const m = /^DIALPLAN_EXISTS\((.*)\)$/.exec(call);
    if (!m || m[1] === '') return undefined;
    const [context = '', extension = ''] = m[1]!.split(',');
    const extensions = this.dialplan.get(context);
    const found = extension === '' ? extensions !== undefined : extensions?.has(extension) ?? false;
    return found ? '1' : '0';
  }

  private notFound(): [number, unknown] {
    return [404, { message: 'Resource not found' }];
  }

  private info() {
    return { system: { version: '22.10.1-sim', entity_id: ASTERISK_ID }, build: { os: 'Linux' }, config: { name: 'sim' }, status: { startup_time: asteriskTime() } };
  }

  private appJson(name: string) {
    const app = this.apps.get(name);
    return {
      name, channel_ids: [...this.channels.values()].filter((c) => c.app === name).map((c) => c.id),
      bridge_ids: [], endpoint_ids: [], device_names: [],
      events_allowed: [...(app?.allowed ?? [])].map((type) => ({ type })),
      events_disallowed: [...(app?.disallowed ?? [])].map((type) => ({ type })),
    };
  }

  private setFilter(name: string, body?: Record<string, unknown>): [number, unknown] {
    const app = this.apps.get(name);
    if (!app) return [404, { message: 'Application not found' }];
    const types = (list: unknown) => new Set((Array.isArray(list) ? list : []).map((e) => (e as { type?: string }).type ?? ''));
    if (!body) {
      app.allowed = undefined;
      app.disallowed = undefined;
    }
    if (body && 'allowed' in body) app.allowed = types(body.allowed);
    if (body && 'disallowed' in body) app.disallowed = types(body.disallowed);
    return [200, this.appJson(name)];
  }

  private setGlobal(q: URLSearchParams): [number, unknown] {
    const variable = q.get('variable');
    if (!variable) return [400, { message: 'Variable name is required' }];
    const value = q.get('value') ?? '';
    const device = /^DEVICE_STATE\((Custom:[^)]+)\)$/.exec(variable);
    if (device) this.deviceStates.set(device[1]!, value);
    else this.globals.set(variable, value);
    return [204, undefined];
  }

  private putDeviceState(name: string, q: URLSearchParams): [number, unknown] {
    const state = q.get('deviceState');
    if (!name.startsWith('Stasis:') || !state) return [500, { message: 'Unknown device' }];
    this.deviceStates.set(name, state);
    return [204, undefined];
  }

  // ---- channels ----

  private nextId(): string {
    this.seq += 1;
    return `${this.epoch}.${this.seq}`;
  }

  private hexSeq(): string {
    return this.seq.toString(16).padStart(8, '0');
  }

  private newChannel(id: string, name: string, role: SimChannel['role'], caller: { name: string; number: string }): SimChannel {
    return {
      id, name, role, caller, state: 'Down', protocolId: randomUUID(), creationtime: asteriskTime(),
      dialplan: { context: 'default', exten: 's', priority: 1, app_name: '', app_data: '' },
      appArgs: [], vars: new Map(), ringing: false, moh: false, dialled: false, timers: [],
    };
  }

  private withChannel(id: string, fn: (ch: SimChannel) => [number, unknown]): [number, unknown] {
    const ch = this.channels.get(id);
    return ch ? fn(ch) : [404, { message: 'Channel not found' }];
  }

  private withStasisChannel(id: string, fn: (ch: SimChannel) => [number, unknown]): [number, unknown] {
    return this.withChannel(id, (ch) => (inStasis(ch) ? fn(ch) : [409, { message: 'Channel not in Stasis application' }]));
  }

  private withBridge(id: string, fn: (b: SimBridge) => [number, unknown]): [number, unknown] {
    const b = this.bridges.get(id);
    return b ? fn(b) : [404, { message: 'Bridge not found' }];
  }

  private setVar(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const variable = q.get('variable');
    if (!variable) return [400, { message: 'Variable name is required' }];
    // `_NAME` / `__NAME` only mark inheritance: the dialplan reads it as ${NAME}.
    ch.vars.set(variable.replace(/^_{1,2}/, ''), q.get('value') ?? '');
    this.onChannelVar?.(ch.id, variable, q.get('value') ?? '');
    // PJSIP_HEADER(...) writes produce no ChannelVarset (fixture README, point 8).
    if (!variable.startsWith('PJSIP_HEADER')) this.emitVarset(ch, variable, q.get('value') ?? '');
    return [204, undefined];
  }

  private createChannel(q: URLSearchParams, body?: Record<string, unknown>): [number, unknown] {
    const parsed = channelParams(q, body);
    if ('error' in parsed) return parsed.error;
    const { endpoint, appName, variables } = parsed;
    const [tech, resource] = endpoint.split('/');
    const local = tech === 'Local' && /^[^@]+@[^@]+$/.test(resource ?? '');
    if (!local && (tech !== 'PJSIP' || !this.pjsipEndpoints.has(resource ?? ''))) return [500, { error: 'Allocation failed' }];
    const id = q.get('channelId') ?? this.nextId();
    // resource_channels.c: ast_request() refuses an id in use (AST_CHANNEL_ERROR_ID_EXISTS).
    if (this.channels.has(id)) return [409, { message: 'Channel with given unique ID already exists' }];
    const ch = this.newChannel(id, local ? `Local/${resource}-${this.hexSeq()};1` : `PJSIP/${resource}-${this.hexSeq()}`, 'created', { name: '', number: '' });
    ch.endpoint = endpoint;
    ch.originatorId = q.get('originator') ?? undefined;
    for (const [k, v] of Object.entries(variables)) ch.vars.set(k, v);
    ch.app = appName;
    ch.appArgs = (q.get('appArgs') ?? '').split(',').filter((a) => a !== '');
    ch.dialplan = { context: 'from-twin', exten: 's', priority: 1, app_name: '', app_data: '' };
    this.channels.set(id, ch);
    ch.enteringStasis = true;
    const announce = () => {
      if (!this.channels.has(id)) return;
      ch.enteringStasis = false;
      // Fixture a2: from here on the channel's dialplan shows it in Stasis with the app's arguments.
      ch.dialplan = { ...ch.dialplan!, app_name: 'Stasis', app_data: [appName, ...ch.appArgs].join(',') };
      this.emit(appName, 'ChannelDialplan', { channel: channelJson(ch), dialplan_app: 'Stasis', dialplan_app_data: [appName, ...ch.appArgs].join(',') });
      this.emit(appName, 'StasisStart', { args: ch.appArgs, channel: channelJson(ch) });
    };
    const delayMs = (this.options.stasisEntryDelayMs ?? recordedStasisEntryDelay)();
    if (delayMs <= 0) announce();
    else this.afterReply.push(() => ch.timers.push(setTimeout(announce, delayMs)));
    return [200, channelJson(ch)];
  }

  /** POST /channels with app=: rings PJSIP/<number>@<endpoint>; answered, it enters Stasis (b1, d4, d6). */
  private originate(q: URLSearchParams, body?: Record<string, unknown>): [number, unknown] {
    const parsed = channelParams(q, body);
    if ('error' in parsed) return parsed.error;
    const { endpoint, appName, variables } = parsed;
    const m = /^PJSIP\/([^@/]+)@([^/]+)$/.exec(endpoint);
    if (!m || !this.pjsipEndpoints.has(m[2]!)) return [500, { error: 'Allocation failed' }];
    const id = q.get('channelId') ?? this.nextId();
    if (this.channels.has(id)) return [409, { message: 'Channel with given unique ID already exists' }];
    const callerId = /<([^>]*)>/.exec(q.get('callerId') ?? '')?.[1] ?? q.get('callerId') ?? '';
    const ch = this.newChannel(id, `PJSIP/${m[2]}-${this.hexSeq()}`, 'created', { name: '', number: callerId });
    ch.endpoint = endpoint;
    ch.subscriber = m[1]!;
    for (const [k, v] of Object.entries(variables)) ch.vars.set(k, v);
    ch.app = appName;
    ch.awaitingAnswer = true;
    ch.appArgs = (q.get('appArgs') ?? '').split(',').filter((a) => a !== '');
    ch.dialplan = { context: 'default', exten: m[1]!, priority: 1, app_name: '', app_data: '' };
    this.channels.set(id, ch);
    const left = new Promise<CallerResult>((resolve) => this.callerWaiters.set(id, resolve));
    this.dials.push({ id, to: m[1]!, from: callerId, left, hangup: () => this.remoteHangup(id, 'caller') });
    const timeoutS = Number(q.get('timeout') ?? '30');
    this.afterReply.push(() => this.ring(ch, this.subscriberBehaviour(m[1]!), timeoutS));
    return [200, channelJson(ch)];
  }

  private dial(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    if (ch.role !== 'created' || ch.state !== 'Down') return [409, { message: "Channel is not in the 'Down' state" }];
    if (ch.dialled) {
      // A second dial on the same channel hangs it up (fixture e1).
      this.afterReply.push(() => this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }));
      return [204, undefined];
    }
    ch.dialled = true;
    ch.dialAt = performance.now();
    if (ch.endpoint?.startsWith('Local/')) {
      // Local;2 runs <extension>@<context>: the person there rings (no INVITE to the bot).
      const [extension = '', context = ''] = ch.endpoint.slice('Local/'.length).split('/')[0]!.split('@');
      this.afterReply.push(() => this.ring(ch, this.personBehaviour(context, extension), Number(q.get('timeout') ?? '0')));
      return [204, undefined];
    }
    // dial?caller= copies the caller's own id onto the leg's connected line, over what the create set
    // (resource_channels.c: ast_connected_line_copy_from_caller); without it the create's stays.
    const callerChannel = this.channels.get(q.get('caller') ?? ch.originatorId ?? '');
    ch.callerChannelId = callerChannel?.id;
    const connected = q.has('caller') ? callerChannel?.caller : connectedLineOf(ch);
    const invite = this.makeInvite(ch, connected);
    ch.invite = invite;
    this.invites.push(invite);
    if (this.invites.length > this.keepInvites) this.invites.shift();
    if (callerChannel?.stasisStartAt !== undefined) this.onBotDial?.(callerChannel.stasisStartAt, ch.dialAt, callerChannel.id);
    const timeoutS = Number(q.get('timeout') ?? '0');
    this.afterReply.push(() => this.ring(ch, this.botBehaviour(invite), timeoutS));
    return [204, undefined];
  }

  private makeInvite(ch: SimChannel, connected?: { name: string; number: string }): SimInvite {
    const target = (ch.endpoint ?? '').split('/').slice(2).join('/');
    const requestUri = target || this.options.contact || 'sip:127.0.0.1:5070';
    const headers: [string, string][] = [];
    for (const [k, v] of ch.vars) {
      const m = /^PJSIP_HEADER\(add,([^)]+)\)$/.exec(k);
      if (m) headers.push([m[1]!, v]);
    }
    return buildInvite(requestUri, fromHeader(connected), headers, ch.protocolId);
  }

  /** A dialled leg (bot leg or originated subscriber) rings, then answers or fails as `b` says. */
  private ring(ch: SimChannel, b: BotBehaviour | PersonBehaviour, timeoutS: number): void {
    const dialstring = (ch.endpoint ?? '').replace(/^PJSIP\//, '');
    const peer = () => channelJson(ch);
    this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: '', dialstring, forward: '' });
    ch.state = 'Ringing';
    this.emit(ch.app, 'ChannelStateChange', { channel: peer() });
    this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: 'RINGING' });
    const later = (ms: number, fn: () => void): void => { ch.timers.push(setTimeout(fn, ms)); };
    // Only an originated leg reports a final Dial status on failure; create+dial does not (d1 vs d4).
    const finalDial = (status: string) => (ch.awaitingAnswer ? status : undefined);
    if (timeoutS > 0) {
      later(timeoutS * 1000, () => this.destroy(ch, { hangupCause: 32, soft: true, destroyCause: 19, causeTxt: 'User alerting, no answer', techCause: 480, dialstatus: finalDial('NOANSWER') }));
    }
    switch (b.kind) {
      case 'answer':
        return later(b.afterMs ?? 5, () => {
          ch.timers.forEach(clearTimeout);
          ch.state = 'Up';
          this.emit(ch.app, 'ChannelStateChange', { channel: peer() });
          this.emit(ch.app, 'Dial', { peer: peer(), dialstatus: 'ANSWER' });
          if (ch.awaitingAnswer) {
            ch.awaitingAnswer = false;
            ch.stasisStartAt = performance.now();
            ch.dialplan = { ...ch.dialplan!, app_name: 'Stasis', app_data: [ch.app, ...ch.appArgs].join(',') };
            this.emit(ch.app, 'StasisStart', { args: ch.appArgs, channel: channelJson(ch) });
          }
          if ('hangupAfterMs' in b && b.hangupAfterMs !== undefined) later(b.hangupAfterMs, () => this.remoteHangup(ch.id, 'bot'));
          if ('refer' in b && b.refer) later(b.refer.afterMs, () => this.referFromBot(ch, b.refer!.to));
        });
      case 'busy':
        return later(b.afterMs ?? 5, () => this.destroy(ch, { hangupCause: 17, techCause: 486, destroyCause: 17, causeTxt: 'User busy', dialstatus: finalDial('BUSY') }));
      case 'unavailable':
        return later(b.afterMs ?? 5, () => this.destroy(ch, { hangupCause: 34, techCause: 503, destroyCause: 34, causeTxt: 'Circuit/channel congestion', dialstatus: finalDial('CONGESTION') }));
      case 'no-answer':
        return;
    }
  }

  /** The bot leg's far end sends a REFER (a test's way to make a bot transfer, again). */
  botRefers(channelId: string, to: string): void {
    const bot = this.channels.get(channelId);
    if (bot) this.referFromBot(bot, to);
  }

  /** The bot leg's far end sends BYE (a test's way to make one bot hang up). */
  botHangsUp(channelId: string): void {
    this.remoteHangup(channelId, 'bot');
  }

  /** A BYE from the far end: the caller (no cause) or the bot (cause 16). */
  private remoteHangup(id: string, who: 'caller' | 'bot'): void {
    const ch = this.channels.get(id);
    if (!ch) return;
    if (ch.botDial) return who === 'caller' ? this.callerLeftBotDial(ch) : this.botLeftBotDial(ch);
    if (who === 'caller') this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-caller', vars: {} });
    else this.destroy(ch, { hangupCause: 16, destroyCause: 16, causeTxt: 'Normal Clearing' });
  }

  private appHangup(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const result: CallerResult = { kind: 'hungup-by-app', reasonCode: q.get('reason_code') ?? undefined, reason: q.get('reason') ?? undefined, vars: {} };
    this.afterReply.push(() => this.destroy(ch, { hangupCause: 32, soft: true, destroyCause: 16, causeTxt: 'Normal Clearing' }, result));
    return [204, undefined];
  }

  private continueChannel(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    if (q.get('context') === (this.options.botDialContext ?? 'twin-bot')) {
      const twinId = q.get('extension') ?? '';
      this.afterReply.push(() => this.runBotDialplan(ch, twinId));
      const app = ch.app;
      ch.app = undefined;
      this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
      ch.botDial = { app: app!, startedAt: performance.now() };
      // GET /channels shows it at twin-bot.conf's Dial() (priority 4) from now on, no longer in Stasis.
      const [dialString = '', timeout = ''] = (ch.vars.get('TWIN_BOT') ?? '').split('^');
      ch.dialplan = { context: q.get('context')!, exten: twinId, priority: 4, app_name: 'Dial', app_data: `${dialString},${timeout},gb(twin-bot-leg^s^1)U(twin-bot-answered^s)` };
      return [204, undefined];
    }
    const result: CallerResult = {
      kind: 'continued', context: q.get('context') ?? ch.dialplan.context, extension: q.get('extension') ?? ch.dialplan.exten,
      priority: Number(q.get('priority') ?? ch.dialplan.priority + 1), vars: {},
    };
    this.leaveBridge(ch);
    const app = ch.app;
    ch.app = undefined;
    this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
    this.finishCaller(ch, result);
    this.channels.delete(ch.id);
    return [204, undefined];
  }

  // ---- the shipped [twin-bot] dialplan (dialplan/asterisk/twin-bot.conf) ----

  /**
   * Dial(${CUT(TWIN_BOT,^,1)},${CUT(TWIN_BOT,^,2)},b(twin-bot-leg…)): the pre-dial handler Set()s
   * each assignment (${TWIN_ID} → the extension) on the bot's channel; the INVITE's From is its
   * connected line. When Dial()
   * returns, the caller enters Stasis again with how it went.
   */
  private runBotDialplan(ch: SimChannel, twinId: string): void {
    ch.ringing = false; // [twin-bot] StopPlaytones(): the ring (ARI's or the dialplan's Playtones) ends here
    const [dial = '', timeout = '0', ...assignments] = (ch.vars.get('TWIN_BOT') ?? '').split('^');
    const headers: [string, string][] = [];
    const connected = { ...ch.caller };
    // The handler's EVAL: ${TWIN_ID} (set from the extension) is the only variable in an assignment.
    for (const assignment of assignments.map((a) => a.replaceAll('${TWIN_ID}', twinId))) {
      const header = /^PJSIP_HEADER\(add,([^)]+)\)=(.*)$/.exec(assignment);
      const line = /^CONNECTEDLINE\((num|name)(?:,i)?\)=(.*)$/.exec(assignment);
      if (header) headers.push([header[1]!, header[2]!]);
      else if (line) connected[line[1] === 'num' ? 'number' : 'name'] = line[2]!;
    }
    const requestUri = /^PJSIP\/[^/]+\/(.+)$/.exec(dial)?.[1] ?? this.options.contact ?? 'sip:127.0.0.1:5070';
    const invite = buildInvite(requestUri, fromHeader(connected), headers, randomUUID());
    this.invites.push(invite);
    if (this.invites.length > this.keepInvites) this.invites.shift();
    if (ch.stasisStartAt !== undefined) this.onBotDial?.(ch.stasisStartAt, performance.now(), ch.id);
    const later = (ms: number, fn: () => void): void => { ch.timers.push(setTimeout(fn, ms)); };
    const b = this.botBehaviour(invite);
    switch (b.kind) {
      case 'answer':
        return later(b.afterMs ?? 5, () => {
          ch.botDial!.answeredAt = performance.now();
          ch.vars.set('TWIN_STATUS', 'CONNECTED'); // U(twin-bot-answered): MASTER_CHANNEL(TWIN_STATUS)
          if (b.hangupAfterMs !== undefined) later(b.hangupAfterMs, () => this.botLeftBotDial(ch));
          if (b.refer) later(b.refer.afterMs, () => this.referInBotDial(ch, b.refer!.to));
        });
      case 'busy': return later(b.afterMs ?? 5, () => this.botDialReturned(ch, 'BUSY', 'SIP 486 Busy Here'));
      case 'unavailable': return later(b.afterMs ?? 5, () => this.botDialReturned(ch, 'CONGESTION', 'SIP 503 Service Unavailable'));
      case 'no-answer': return later(Number(timeout) * 1000, () => this.botDialReturned(ch, 'NOANSWER'));
    }
  }

  /** Dial() returned with the caller still here: Stasis(twin,twin_report=dial,…). */
  private botDialReturned(ch: SimChannel, status: string, sip = ''): void {
    const dial = ch.botDial;
    if (!dial || !this.channels.has(ch.id)) return;
    ch.botDial = undefined;
    this.enterStasisAgain(ch, dial.app, ['twin_report=dial', `status=${status}`, `sip=${sip}`, ...answerTimes(ch, dial)]);
  }

  /**
   * The bot hangs up an answered Dial(): with `g` the caller goes on in the dialplan; without it
   * Asterisk hangs the caller up too, and its hangup handler reports (real Asterisk 22.10.1).
   */
  private botLeftBotDial(ch: SimChannel): void {
    if (this.options.botDialGoesOn ?? this.shippedBotDialGoesOn) return this.botDialReturned(ch, 'ANSWER');
    if (!ch.botDial || !this.channels.has(ch.id)) return;
    const dial = ch.botDial;
    ch.botDial = undefined;
    ch.timers.forEach(clearTimeout);
    this.enterStasisAgain(ch, dial.app, ['twin_report=hangup', 'status=ANSWER', ...answerTimes(ch, dial), `transfer=${dial.transferredTo ?? ''}`]);
    this.destroy(ch, { hangupCause: 16, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-app', vars: {} });
  }

  /** The caller hangs up during Dial(): its hangup handler runs Stasis(twin,twin_report=hangup,…) and it is gone at once. */
  private callerLeftBotDial(ch: SimChannel): void {
    const dial = ch.botDial!;
    ch.botDial = undefined;
    ch.timers.forEach(clearTimeout);
    const status = dial.answeredAt !== undefined ? 'ANSWER' : 'CANCEL';
    this.enterStasisAgain(ch, dial.app, ['twin_report=hangup', `status=${status}`, ...answerTimes(ch, dial), `transfer=${dial.transferredTo ?? ''}`]);
    this.destroy(ch, { hangupCause: undefined, destroyCause: 16, causeTxt: 'Normal Clearing' }, { kind: 'hungup-by-caller', vars: {} });
  }

  private enterStasisAgain(ch: SimChannel, app: string, args: string[]): void {
    ch.app = app;
    ch.appArgs = args;
    // After Dial() in [twin-bot] (priority 6), or in the hangup handler [twin-bot-ended].
    const where = args[0] === 'twin_report=dial'
      ? { context: this.options.botDialContext ?? 'twin-bot', exten: ch.dialplan.exten, priority: 6 } : { context: 'twin-bot-ended', exten: 's', priority: 1 };
    ch.dialplan = { ...where, app_name: 'Stasis', app_data: [app, ...args].join(',') };
    if (!this.appConnected(app)) {
      ch.app = undefined;
      // twin-bot.conf: Stasis() failed, so Goto(twin-fallback,agent,1): the caller waits in the queue.
      if (args[0] === 'twin_report=dial') {
        ch.vars.set('STASISSTATUS', 'FAILED');
        ch.dialplan = { context: 'twin-fallback', exten: 'agent', priority: 2, app_name: 'Queue', app_data: 'agents,t' };
        this.finishCaller(ch, { kind: 'app-unavailable', vars: { STASISSTATUS: 'FAILED' } });
      }
      return;
    }
    this.emit(app, 'StasisStart', { args, channel: channelJson(ch) });
  }

  // ---- a bot's REFER (recordings refer-ari-only, refer-ari-only-decline, refer-core) ----

  /**
   * The bot leg (in our bridge) sends REFER. With PJSIP_TRANSFER_HANDLING()=ari-only written on it,
   * Asterisk only tells the app (ChannelTransfer, no state) and NOTIFYs 100; otherwise it transfers
   * by itself within TRANSFER_CONTEXT (else the endpoint's context); an extension that does not
   * exist there gets 202 and NOTIFYs 100, 404 (real Asterisk 22.10.1: "target does not exist"), and nothing moves.
   */
  private referFromBot(bot: SimChannel, to: string): void {
    if (!this.channels.has(bot.id)) return;
    const caller = this.channels.get(bot.callerChannelId ?? '');
    const refer: SimRefer = { to, handling: 'refused', notifies: [], callerId: caller?.id };
    bot.refer = refer;
    this.refers.push(refer);
    if (bot.vars.get('PJSIP_TRANSFER_HANDLING()') === 'ari-only' && inStasis(bot)) {
      refer.handling = 'ari';
      refer.notifies.push(100);
      return this.emitChannelTransfer(bot, undefined);
    }
    const context = bot.vars.get('TRANSFER_CONTEXT') ?? 'from-twin';
    if (!this.transferExtensionExists(context, to)) return void refer.notifies.push(100, 404); // nothing moves
    refer.handling = 'core';
    refer.notifies.push(100, 200); // at once, before anyone answers (refer-core)
    this.coreBlindTransfer(bot, context, to);
  }

  private emitChannelTransfer(bot: SimChannel, state: string | undefined): void {
    const caller = this.channels.get(bot.callerChannelId ?? '');
    const bridge = bot.bridgeId ? this.bridges.get(bot.bridgeId) : undefined;
    this.emit(bot.app, 'ChannelTransfer', {
      ...(state ? { state } : {}),
      refer_to: { requested_destination: { destination: bot.refer?.to ?? '' } },
      referred_by: {
        source_channel: channelJson(bot),
        ...(caller ? { connected_channel: channelJson(caller) } : {}),
        ...(bridge ? { bridge: bridgeJson(bridge) } : {}),
      },
    });
  }

  /** POST /channels/{bot}/transfer_progress: the NOTIFY the bot gets, and the event echoing the state. */
  private transferProgress(ch: SimChannel, q: URLSearchParams): [number, unknown] {
    const state = q.get('states') ?? '';
    if (!(state in PROGRESS_NOTIFY)) return [400, { message: 'Invalid states' }];
    const code = PROGRESS_NOTIFY[state];
    if (code !== undefined) ch.refer?.notifies.push(code);
    this.afterReply.push(() => this.emitChannelTransfer(ch, state));
    return [204, undefined];
  }

  /**
   * Asterisk's own blind transfer out of a Stasis bridge (refer-core): a Local/<to>@<context> pair;
   * its ;1 takes the bot's place in the bridge (StasisStart with replace_channel), its ;2 runs the
   * dialplan and rings the person. The bot stays up in the app, out of the bridge.
   */
  private coreBlindTransfer(bot: SimChannel, context: string, to: string): void {
    const id = this.nextId();
    const local = this.newChannel(id, `Local/${to}@${context}-${this.hexSeq()};1`, 'created', { name: '', number: '' });
    local.app = bot.app;
    local.dialplan = { context, exten: to, priority: 1, app_name: 'Stasis', app_data: bot.app ?? '' };
    local.endpoint = `Local/${to}@${context}`;
    this.channels.set(id, local);
    this.emit(local.app, 'StasisStart', { args: [], channel: channelJson(local), replace_channel: channelJson(bot) });
    const bridge = bot.bridgeId ? this.bridges.get(bot.bridgeId) : undefined;
    this.leaveBridge(bot);
    if (bridge) {
      local.bridgeId = bridge.id;
      bridge.channels.push(id);
      this.emit(local.app, 'ChannelEnteredBridge', { bridge: bridgeJson(bridge), channel: channelJson(local) });
    }
    this.emit(local.app, 'BridgeBlindTransfer', {
      channel: channelJson(bot), exten: to, context, result: 'Success', is_external: true, replace_channel: channelJson(local),
      ...(bridge ? { bridge: bridgeJson(bridge) } : {}),
    });
    this.ring(local, this.personBehaviour(context, to), this.options.transferRingTimeoutS ?? 20);
  }

  /**
   * bot_leg dialplan: the bot's REFER in Dial()'s own bridge moves the caller to TRANSFER_CONTEXT
   * (the pre-dial handler set it on the bot's channel), whose shipped [twin-transfers] entry sets
   * TWIN_TRANSFER_TARGET and sends the caller on to the person; the hangup handler reports it.
   */
  private referInBotDial(caller: SimChannel, to: string): void {
    const dial = caller.botDial;
    if (!dial || !this.channels.has(caller.id)) return;
    const assignments = (caller.vars.get('TWIN_BOT') ?? '').split('^').slice(2);
    const context = assignments.find((a) => a.startsWith('TRANSFER_CONTEXT='))?.slice('TRANSFER_CONTEXT='.length) ?? 'from-twin';
    const refer: SimRefer = { to, handling: 'refused', notifies: [], callerId: caller.id };
    this.refers.push(refer);
    if (!this.transferExtensionExists(context, to)) return void refer.notifies.push(100, 404);
    refer.handling = 'core';
    refer.notifies.push(100, 200);
    dial.transferredTo = to;
    caller.vars.set('TWIN_TRANSFER_TARGET', to);
    caller.vars.set('TWIN_STATUS', 'TRANSFERRED');
  }

  private transferExtensionExists(context: string, extension: string): boolean {
    return this.transferContexts()[context]?.includes(extension) ?? false;
  }

  private transferContexts(): Record<string, string[]> {
    return this.options.transferExtensions ?? { 'twin-transfers': ['operator'], 'from-twin': ['200', 'operator'] };
  }

  /** Hang-up of a channel: the recorded event order, then a caller goes back to the dialplan. */
  private destroy(
    ch: SimChannel,
    how: { hangupCause?: number; soft?: boolean; techCause?: number; destroyCause: number; causeTxt: string; dialstatus?: string },
    callerResult?: CallerResult,
  ): void {
    if (!this.channels.has(ch.id)) return;
    ch.timers.forEach(clearTimeout);
    const app = ch.app;
    const hangup: Record<string, unknown> = { channel: channelJson(ch) };
    if (how.hangupCause !== undefined) hangup.cause = how.hangupCause;
    if (how.techCause !== undefined) hangup.tech_cause = how.techCause;
    if (how.soft) hangup.soft = true;
    this.emit(app, 'ChannelHangupRequest', hangup);
    if (how.dialstatus !== undefined) this.emit(app, 'Dial', { peer: channelJson(ch), dialstatus: how.dialstatus });
    if (ch.bridgeId) this.bridges.get(ch.bridgeId)!.hadHangupInside = true;
    this.leaveBridge(ch);
    if (ch.state === 'Up') for (let i = 0; i < RTP_QOS_VARS; i++) this.emitVarset(ch, `RTPAUDIOQOS${i}`, '');
    if (app && !ch.awaitingAnswer) this.emit(app, 'StasisEnd', { channel: channelJson(ch) });
    ch.app = undefined;
    this.channels.delete(ch.id);
    if (ch.role === 'created') {
      // Only channels we created report ChannelDestroyed; a caller has gone back to the dialplan (fixture a1).
      const destroyed: Record<string, unknown> = { channel: channelJson(ch), cause: how.destroyCause, cause_txt: how.causeTxt };
      if (how.techCause !== undefined) destroyed.tech_cause = how.techCause;
      this.emit(app, 'ChannelDestroyed', destroyed);
      if (ch.subscriber !== undefined) this.finishCaller(ch, callerResult ?? { kind: 'hungup-by-caller', vars: {} });
    } else {
      this.finishCaller(ch, callerResult ?? { kind: 'hungup-by-caller', vars: {} });
    }
  }

  private finishCaller(ch: SimChannel, result: CallerResult): void {
    result.vars = { ...Object.fromEntries(ch.vars), ...result.vars };
    const waiter = this.callerWaiters.get(ch.id);
    this.callerWaiters.delete(ch.id);
    waiter?.(result);
  }

  // ---- bridges ----

  private createBridge(id: string, q: URLSearchParams): [number, unknown] {
    const type = q.get('type') ?? 'mixing';
    if (!type.split(',').every((t) => BRIDGE_TYPES.has(t))) {
      return [500, { message: "Unable to create bridge. Possible duplicate bridge id '(null)'" }];
    }
    const bridge: SimBridge = { id, name: q.get('name') ?? '', channels: [], hadHangupInside: false };
    this.bridges.set(id, bridge);
    return [200, bridgeJson(bridge)];
  }

  private addChannels(b: SimBridge, q: URLSearchParams): [number, unknown] {
    const ids = (q.get('channel') ?? '').split(',').filter(Boolean);
    if (ids.length === 0) return [400, { message: 'Missing parameter channel' }];
    const chans = ids.map((id) => this.channels.get(id));
    if (chans.some((c) => c === undefined)) return [400, { message: 'Channel not found' }];
    if (chans.some((c) => !inStasis(c!))) return [422, { message: 'Channel not in Stasis application' }];
    this.afterReply.push(() => {
      for (const ch of chans as SimChannel[]) {
        if (!this.channels.has(ch.id)) continue;
        this.leaveBridge(ch);
        ch.bridgeId = b.id;
        b.channels.push(ch.id);
        this.emit(ch.app, 'ChannelEnteredBridge', { bridge: bridgeJson(b), channel: channelJson(ch) });
        this.emitVarset(ch, 'BRIDGEPEER', '');
        this.emitVarset(ch, 'BRIDGEPVTCALLID', '');
      }
    });
    return [204, undefined];
  }

  private removeChannel(b: SimBridge, q: URLSearchParams): [number, unknown] {
    const ch = this.channels.get(q.get('channel') ?? '');
    if (!ch) return [400, { message: 'Channel not found' }];
    this.leaveBridge(ch);
    return [204, undefined];
  }

  private leaveBridge(ch: SimChannel): void {
    const b = ch.bridgeId ? this.bridges.get(ch.bridgeId) : undefined;
    ch.bridgeId = undefined;
    if (!b) return;
    b.channels = b.channels.filter((c) => c !== ch.id);
    this.emit(ch.app, 'ChannelLeftBridge', { bridge: bridgeJson(b), channel: channelJson(ch) });
  }

  private destroyBridge(b: SimBridge): [number, unknown] {
    for (const id of [...b.channels]) {
      const ch = this.channels.get(id);
      if (ch) this.leaveBridge(ch);
    }
    this.bridges.delete(b.id);
    // BridgeDestroyed only reaches the app when a channel was hung up inside (fixture h1).
    if (b.hadHangupInside) {
      const app = [...this.apps.keys()][0];
      this.afterReply.push(() => this.emit(app, 'BridgeDestroyed', { bridge: bridgeJson(b) }));
    }
    return [204, undefined];
  }
}

/** What POST /channels and /channels/create both require, with Asterisk's error bodies. */
function channelParams(q: URLSearchParams, body?: Record<string, unknown>):
  { endpoint: string; appName: string; variables: Record<string, string> } | { error: [number, unknown] } {
  const endpoint = q.get('endpoint');
  const appName = q.get('app');
  if (!endpoint) return { error: [400, { message: 'Endpoint must be specified' }] };
  if (!appName) return { error: [400, { message: 'Application or extension must be specified' }] };
  const variables = (body?.variables ?? {}) as Record<string, unknown>;
  if (Object.values(variables).some((v) => typeof v !== 'string')) {
    return { error: [400, { message: "Each value in 'variables' must be a string or an object with 'value' and optional 'report_events'" }] };
  }
  return { endpoint, appName, variables: variables as Record<string, string> };
}

/** In Stasis: entered the app and not still on its way in (created) or ringing (originated). */
function inStasis(ch: SimChannel): boolean {
  return ch.app !== undefined && !ch.awaitingAnswer && !ch.enteringStasis;
}

/**
 * StasisStart of a created channel after the create reply, as recorded on Asterisk 22.10.1
 * (create-dial-race: 85 of 400 before the reply, then p50 0.5, p90 1.1-6.9, p99 3-8 ms).
 */
export function recordedStasisEntryDelay(): number {
  const u = Math.random();
  if (u < 0.2) return 0;
  if (u < 0.6) return 0.2 + Math.random() * 0.5;
  if (u < 0.9) return 0.7 + Math.random() * 1.5;
  if (u < 0.99) return 2 + Math.random() * 4;
  return 6 + Math.random() * 3;
}

/** The connected line a create's CONNECTEDLINE(num|name[,i]) variables set; undefined when none did. */
function connectedLineOf(ch: SimChannel): { name: string; number: string } | undefined {
  const number = ch.vars.get('CONNECTEDLINE(num,i)') ?? ch.vars.get('CONNECTEDLINE(num)');
  const name = ch.vars.get('CONNECTEDLINE(name,i)') ?? ch.vars.get('CONNECTEDLINE(name)');
  return number === undefined && name === undefined ? undefined : { number: number ?? '', name: name ?? '' };
}

/**
 * The variables a report of twin-bot.conf carries about the answer: ANSWEREDTIME_MS is the caller's
 * own up time (app_dial.c end_bridge_callback: ast_channel_get_up_time_ms(chan)), TWIN_ANSWERED_AT
 * and now are epoch ms (STRFTIME(,,%s%3q)) from [twin-bot-answered] and the report line.
 */
function answerTimes(caller: SimChannel, dial: { answeredAt?: number }): string[] {
  const epochMs = (at: number) => String(Math.round(performance.timeOrigin + at));
  const upMs = caller.answeredAt === undefined ? '' : String(Math.round(performance.now() - caller.answeredAt));
  return [`answered_ms=${upMs}`, `answered_at=${dial.answeredAt === undefined ? '' : epochMs(dial.answeredAt)}`, `now=${epochMs(performance.now())}`];
}

/** `a,B(c,d),e` → ['a', 'B(c,d)', 'e']: commas inside parentheses do not split (ast_app_separate_args). */
function splitOutsideParentheses(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && depth > 0) depth--;
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
