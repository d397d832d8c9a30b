/**
 * The only module that touches `ari-client` (the event websocket and the app's registration; its
 * frames pass the guard in ari-frames.ts) and ARI's REST API: the handful of typed ARI calls the
 * driver needs, each with a timeout, and the event stream as plain JSON events.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import ari from 'ari-client';
import { Pool, request } from 'undici';
import type { AsteriskConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { guardEventFrames, type GuardedClient } from './ari-frames.js';

// Two defects of swagger-client 2.0 (inside ari-client), contained here:
// - it defines an implicit global `log` that writes to stdout and keeps every message in memory,
//   which would break our JSON log lines;
// - after reporting a failed api-docs load (which ari-client turns into a rejected connect), it
//   throws again from inside the HTTP callback, which would kill the whole daemon.
(globalThis as { log?: unknown }).log = () => {};
const requireFromAriClient = createRequire(createRequire(import.meta.url).resolve('ari-client'));
const swaggerApi = (requireFromAriClient('swagger-client') as { SwaggerApi: { prototype: { fail(message: unknown): void; failure(message: unknown): void } } }).SwaggerApi;
swaggerApi.prototype.fail = function fail(message: unknown) {
  this.failure(message);
};

/** An ARI event as Asterisk sends it (only the fields we read are typed). */
export interface AriEvent {
  type: string;
  timestamp?: string;
  args?: string[];
  channel?: AriChannel;
  peer?: AriChannel;
  dialstatus?: string;
  cause?: number;
  cause_txt?: string;
  tech_cause?: number;
  /** StasisStart of a channel that took another's place in a bridge (Asterisk's own blind transfer). */
  replace_channel?: AriChannel;
  /** ChannelTransfer (a REFER with ari-only handling): absent on the request, the app's own report after. */
  state?: string;
  refer_to?: { requested_destination?: { destination?: string } };
  referred_by?: { source_channel?: AriChannel };
}

export interface AriChannel {
  id: string;
  name?: string;
  state?: string;
  /** When Asterisk created the channel (its clock, e.g. 2026-12-06T22:37:01.123+0000). */
  creationtime?: string;
  caller?: { name?: string; number?: string };
  dialplan?: { context?: string; exten?: string; priority?: number; app_name?: string; app_data?: string };
}

/**
 * Thrown for an ARI request that failed; `notFound` means the channel or bridge is already gone.
 * `answered` is false when no HTTP answer came (connection lost, timeout): Asterisk may have
 * carried the request out all the same.
 */
export class AriError extends Error {
  constructor(readonly operation: string, message: string, readonly notFound: boolean, readonly answered = true) {
    super(`ARI ${operation} failed: ${message}`);
    this.name = 'AriError';
  }
}

/** Events the driver uses; Asterisk drops all others before sending (PUT .../eventFilter). */
export const USED_EVENTS = ['StasisStart', 'StasisEnd', 'ChannelDestroyed', 'Dial', 'ChannelTransfer'] as const;

interface AriClientLike extends EventEmitter {
  start(app: string): PromiseLike<void>;
  stop(): void;
  [resource: string]: unknown;
}

/**
 * Checks that ARI answers with these credentials before handing over to ari-client, whose
 * swagger loader reports a wrong password or a stopped Asterisk poorly.
 */
export async function probeAri(cfg: AsteriskConfig): Promise<{ ok: true; version: string } | { ok: false; problem: string }> {
  const url = new URL('/ari/asterisk/info?only=system', cfg.url);
  const auth = Buffer.from(`${cfg.username}:${cfg.password}`).toString('base64');
  try {
    const res = await request(url, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(cfg.request_timeout_ms) });
    const text = await res.body.text();
    if (res.statusCode === 401) return { ok: false, problem: `ARI at ${cfg.url} refused user '${cfg.username}': wrong username or password (ari.conf)` };
    if (res.statusCode !== 200) return { ok: false, problem: `ARI at ${cfg.url} answered HTTP ${res.statusCode}` };
    const version = (JSON.parse(text) as { system?: { version?: string } }).system?.version ?? 'unknown';
    return { ok: true, version };
  } catch (err) {
    const code = (err as { code?: string; cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code ?? 'error';
    return { ok: false, problem: `cannot reach ARI at ${cfg.url} (${code}): is Asterisk running with http.conf enabled and ari.conf set?` };
  }
}

/** Query-string values; undefined ones are left out. */
type Query = Record<string, string | number | undefined>;

/** One ARI request without a connection of the app (the check command): the status and the parsed body. */
export async function ariRequest(
  cfg: AsteriskConfig, method: 'GET' | 'POST' | 'DELETE', path: string, query: Query = {},
): Promise<{ status: number; body: unknown }> {
  const url = new URL(`/ari${path}`, cfg.url);
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  const auth = Buffer.from(`${cfg.username}:${cfg.password}`).toString('base64');
  const res = await request(url, { method, headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(cfg.request_timeout_ms) });
  return { status: res.statusCode, body: parseJson(await res.body.text()) };
}

/**
 * ARI for the driver. ari-client keeps the event websocket (and registers the app); requests go
 * over a keep-alive undici pool instead of ari-client's swagger/shred layer, which cost several
 * times the CPU per request (profiled: ~30 % of the product's CPU in the call path).
 */
export class AriRest extends EventEmitter {
  /** REST requests made, by operation: the benchmark reports them per call. */
  readonly requestCount = new Map<string, number>();
  private readonly pool: Pool;
  private readonly authorization: string;

  private constructor(private readonly client: AriClientLike, private readonly cfg: AsteriskConfig) {
    super();
    this.pool = new Pool(new URL(cfg.url).origin, { connections: cfg.max_http_connections, keepAliveTimeout: 30_000 });
    this.authorization = `Basic ${Buffer.from(`${cfg.username}:${cfg.password}`).toString('base64')}`;
  }

  /** Loads the API description and opens the event websocket. */
  static async connect(cfg: AsteriskConfig, log: Logger): Promise<AriRest> {
    // ari-client's own HTTP (the api-docs at connect) uses Node's global agent: keep it bounded.
    http.globalAgent.maxSockets = cfg.max_http_connections;
    const client = (await ari.connect(cfg.url, cfg.username, cfg.password)) as AriClientLike;
    const rest = new AriRest(client, cfg);
    // Before start() opens the websocket. The events the driver uses go to it as parsed JSON.
    guardEventFrames(client as GuardedClient, log, { types: new Set(USED_EVENTS), deliver: (event) => rest.emit('event', event) });
    for (const name of ['WebSocketConnected', 'WebSocketReconnecting', 'WebSocketMaxRetries']) {
      client.on(name, (err?: Error) => rest.emit(name, err));
    }
    await client.start(cfg.app);
    return rest;
  }

  stop(): void {
    this.client.stop();
    this.client.removeAllListeners();
    void this.pool.close().catch(() => {}); // requests already sent (hang-ups of ringing dials) still go out
  }

  totalRequests(): number {
    let total = 0;
    for (const n of this.requestCount.values()) total += n;
    return total;
  }

  answer(channelId: string) { return this.call('channels.answer', 'POST', `/channels/${enc(channelId)}/answer`); }
  ring(channelId: string) { return this.call('channels.ring', 'POST', `/channels/${enc(channelId)}/ring`); }
  ringStop(channelId: string) { return this.call('channels.ringStop', 'DELETE', `/channels/${enc(channelId)}/ring`); }
  startMoh(channelId: string, mohClass: string) { return this.call('channels.startMoh', 'POST', `/channels/${enc(channelId)}/moh`, { mohClass }); }
  stopMoh(channelId: string) { return this.call('channels.stopMoh', 'DELETE', `/channels/${enc(channelId)}/moh`); }
  setVar(channelId: string, variable: string, value: string) {
    return this.call('channels.setChannelVar', 'POST', `/channels/${enc(channelId)}/variable`, { variable, value });
  }
  hangup(channelId: string, reasonCode?: number) {
    return this.call('channels.hangup', 'DELETE', `/channels/${enc(channelId)}`, { reason_code: reasonCode });
  }
  continueInDialplan(channelId: string, context: string, extension: string, priority: number) {
    return this.call('channels.continueInDialplan', 'POST', `/channels/${enc(channelId)}/continue`, { context, extension, priority });
  }
  /** originator: the requesting channel (linked id, its codecs); it does not touch the caller id. */
  createChannel(p: { channelId: string; endpoint: string; appArgs: string; originator?: string; variables: Record<string, string> }) {
    const query = { channelId: p.channelId, endpoint: p.endpoint, appArgs: p.appArgs, app: this.cfg.app, originator: p.originator };
    return this.call('channels.create', 'POST', '/channels/create', query, { variables: p.variables });
  }
  /** POST /channels: the channel enters our app (StasisStart) once it is answered. */
  originate(p: { channelId: string; endpoint: string; callerId: string; timeout: number; appArgs: string; variables: Record<string, string> }) {
    const { variables, ...query } = p;
    return this.call('channels.originate', 'POST', '/channels', { ...query, app: this.cfg.app }, { variables });
  }
  /** Tells the bot how its REFER goes (ari-only handling): NOTIFY 100 / 200 / 603 / 503. */
  transferProgress(channelId: string, state: 'channel_progress' | 'channel_answered' | 'channel_declined' | 'channel_unavailable') {
    return this.call('channels.transferProgress', 'POST', `/channels/${enc(channelId)}/transfer_progress`, { states: state });
  }
  /**
   * caller= makes Asterisk copy that channel's variables, and its own caller id onto this leg's
   * connected line (the INVITE's From): give it only where the raw caller id may show.
   */
  dial(channelId: string, caller: string | undefined, timeout: number) {
    return this.call('channels.dial', 'POST', `/channels/${enc(channelId)}/dial`, { caller, timeout });
  }
  /** A channel variable's value; '' when it is unset (Asterisk 22 answers 404 "Provided variable was not found"). */
  async getVar(channelId: string, variable: string): Promise<string> {
    try {
      const answer = (await this.call('channels.getChannelVar', 'GET', `/channels/${enc(channelId)}/variable`, { variable })) as { value?: string } | undefined;
      return answer?.value ?? '';
    } catch (err) {
      if (err instanceof AriError && /variable was not found/i.test(err.message)) return '';
      throw err;
    }
  }
  /** One channel as ARI shows it now; undefined when it is gone (404). */
  async channel(channelId: string): Promise<AriChannel | undefined> {
    try {
      return (await this.call('channels.get', 'GET', `/channels/${enc(channelId)}`)) as AriChannel;
    } catch (err) {
      if (err instanceof AriError && err.notFound) return undefined;
      throw err;
    }
  }
  async channels(): Promise<AriChannel[]> {
    return (await this.call('channels.list', 'GET', '/channels')) as AriChannel[];
  }
  createBridge(bridgeId: string) {
    return this.call('bridges.create', 'POST', `/bridges/${enc(bridgeId)}`, { type: 'mixing', name: bridgeId });
  }
  addToBridge(bridgeId: string, channelIds: string[]) {
    return this.call('bridges.addChannel', 'POST', `/bridges/${enc(bridgeId)}/addChannel`, { channel: channelIds.join(',') });
  }
  startBridgeMoh(bridgeId: string, mohClass: string) { return this.call('bridges.startMoh', 'POST', `/bridges/${enc(bridgeId)}/moh`, { mohClass }); }
  stopBridgeMoh(bridgeId: string) { return this.call('bridges.stopMoh', 'DELETE', `/bridges/${enc(bridgeId)}/moh`); }
  destroyBridge(bridgeId: string) { return this.call('bridges.destroy', 'DELETE', `/bridges/${enc(bridgeId)}`); }
  /** Dialplan functions read through a bridge (GET /bridges/{id}/variables: Asterisk 20.20, 22.10, 23.4). */
  async bridgeVariables(bridgeId: string, expressions: string[]): Promise<Record<string, string>> {
    const answer = await this.call('bridges.getVariables', 'GET', `/bridges/${enc(bridgeId)}/variables`, { variables: expressions.join(',') });
    return (answer as { variables?: Record<string, string> } | undefined)?.variables ?? {};
  }
  async bridges(): Promise<{ id: string; channels?: string[] }[]> {
    return (await this.call('bridges.list', 'GET', '/bridges')) as { id: string; channels?: string[] }[];
  }
  /** A PJSIP (or other) endpoint as ARI shows it; undefined when Asterisk has none by that name (404). */
  async endpoint(tech: string, resource: string): Promise<{ state?: string } | undefined> {
    try {
      return (await this.call('endpoints.get', 'GET', `/endpoints/${enc(tech)}/${enc(resource)}`)) as { state?: string };
    } catch (err) {
      if (err instanceof AriError && err.notFound) return undefined;
      throw err;
    }
  }
  setGlobal(variable: string, value: string) { return this.call('asterisk.setGlobalVar', 'POST', '/asterisk/variable', { variable, value }); }
  filterEvents(types: readonly string[]) {
    return this.call('applications.filter', 'PUT', `/applications/${enc(this.cfg.app)}/eventFilter`, {}, { allowed: types.map((type) => ({ type })) });
  }

  private async call(name: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, query: Query = {}, body?: unknown): Promise<unknown> {
    this.requestCount.set(name, (this.requestCount.get(name) ?? 0) + 1);
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) search.set(key, String(value));
    const qs = search.toString();
    let text: string;
    let status: number;
    try {
      const res = await this.pool.request({
        method, path: `/ari${path}${qs ? `?${qs}` : ''}`,
        headers: body === undefined ? { authorization: this.authorization } : { authorization: this.authorization, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: this.cfg.request_timeout_ms, bodyTimeout: this.cfg.request_timeout_ms,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      const timedOut = /timeout/i.test((err as { code?: string }).code ?? '');
      throw new AriError(name, timedOut ? `no answer within ${this.cfg.request_timeout_ms} ms` : (err as Error).message, false, false);
    }
    const parsed = parseJson(text);
    if (status >= 400) {
      const message = (parsed as { message?: string } | undefined)?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
      throw new AriError(name, message, status === 404);
    }
    return parsed;
  }
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
