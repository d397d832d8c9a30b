/**
 * The only module that touches `ari-client`. It turns the library's swagger-generated client into
 * the handful of typed ARI calls the driver needs, each with a timeout, and exposes the event
 * stream as plain JSON events.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import ari from 'ari-client';
import { request } from 'undici';
import type { AsteriskConfig } from '../../config/schema.js';

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
}

export interface AriChannel {
  id: string;
  name?: string;
  state?: string;
  caller?: { name?: string; number?: string };
  dialplan?: { context?: string; exten?: string; priority?: number; app_name?: string; app_data?: string };
}

/** Thrown for an ARI request that failed; `notFound` means the channel or bridge is already gone. */
export class AriError extends Error {
  constructor(readonly operation: string, message: string, readonly notFound: boolean) {
    super(`ARI ${operation} failed: ${message}`);
    this.name = 'AriError';
  }
}

/** Events the driver uses; Asterisk drops all others before sending (PUT .../eventFilter). */
export const USED_EVENTS = ['StasisStart', 'StasisEnd', 'ChannelDestroyed', 'Dial'] as const;

type Operation = (params: Record<string, unknown>) => PromiseLike<unknown>;
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

export class AriRest extends EventEmitter {
  /** REST requests made, by operation: the benchmark reports them per call. */
  readonly requestCount = new Map<string, number>();

  private constructor(private readonly client: AriClientLike, private readonly cfg: AsteriskConfig) {
    super();
  }

  /** Loads the API description and opens the event websocket. */
  static async connect(cfg: AsteriskConfig): Promise<AriRest> {
    // ari-client's HTTP layer (swagger-client + shred) uses Node's global agent. Bound it: Asterisk
    // serves 100 HTTP sessions by default, and unbounded sockets under load made real clean-up
    // DELETEs fail. Nothing else in this process uses the global agent (Twin goes through undici).
    http.globalAgent.maxSockets = cfg.max_http_connections;
    const client = (await ari.connect(cfg.url, cfg.username, cfg.password)) as AriClientLike;
    const rest = new AriRest(client, cfg);
    for (const type of USED_EVENTS) client.on(type, (event: AriEvent) => rest.emit('event', event));
    for (const name of ['WebSocketConnected', 'WebSocketReconnecting', 'WebSocketMaxRetries']) {
      client.on(name, (err?: Error) => rest.emit(name, err));
    }
    await client.start(cfg.app);
    return rest;
  }

  stop(): void {
    this.client.stop();
    this.client.removeAllListeners();
  }

  totalRequests(): number {
    let total = 0;
    for (const n of this.requestCount.values()) total += n;
    return total;
  }

  ring(channelId: string) { return this.call('channels', 'ring', { channelId }); }
  ringStop(channelId: string) { return this.call('channels', 'ringStop', { channelId }); }
  startMoh(channelId: string, mohClass: string) { return this.call('channels', 'startMoh', { channelId, mohClass }); }
  stopMoh(channelId: string) { return this.call('channels', 'stopMoh', { channelId }); }
  setVar(channelId: string, variable: string, value: string) {
    return this.call('channels', 'setChannelVar', { channelId, variable, value });
  }
  hangup(channelId: string, reasonCode?: number) {
    return this.call('channels', 'hangup', reasonCode === undefined ? { channelId } : { channelId, reason_code: String(reasonCode) });
  }
  continueInDialplan(channelId: string, context: string, extension: string, priority: number) {
    return this.call('channels', 'continueInDialplan', { channelId, context, extension, priority });
  }
  createChannel(p: { channelId: string; endpoint: string; appArgs: string; variables: Record<string, string> }) {
    return this.call('channels', 'create', { ...p, app: this.cfg.app });
  }
  /** POST /channels: the channel enters our app (StasisStart) once it is answered. */
  originate(p: { channelId: string; endpoint: string; callerId: string; timeout: number; appArgs: string; variables: Record<string, string> }) {
    return this.call('channels', 'originate', { ...p, app: this.cfg.app });
  }
  dial(channelId: string, caller: string, timeout: number) { return this.call('channels', 'dial', { channelId, caller, timeout }); }
  /** A channel variable's value; '' when it is unset (Asterisk 22 answers 404 "Provided variable was not found"). */
  async getVar(channelId: string, variable: string): Promise<string> {
    try {
      const answer = (await this.call('channels', 'getChannelVar', { channelId, variable })) as { value?: string } | undefined;
      return answer?.value ?? '';
    } catch (err) {
      if (err instanceof AriError && /variable was not found/i.test(err.message)) return '';
      throw err;
    }
  }
  async channels(): Promise<AriChannel[]> {
    return (await this.call('channels', 'list', {})) as AriChannel[];
  }
  createBridge(bridgeId: string) { return this.call('bridges', 'create', { type: 'mixing', bridgeId, name: bridgeId }); }
  addToBridge(bridgeId: string, channelIds: string[]) {
    return this.call('bridges', 'addChannel', { bridgeId, channel: channelIds.join(',') });
  }
  destroyBridge(bridgeId: string) { return this.call('bridges', 'destroy', { bridgeId }); }
  async bridges(): Promise<{ id: string; channels?: string[] }[]> {
    return (await this.call('bridges', 'list', {})) as { id: string; channels?: string[] }[];
  }
  setGlobal(variable: string, value: string) { return this.call('asterisk', 'setGlobalVar', { variable, value }); }
  filterEvents(types: readonly string[]) {
    return this.call('applications', 'filter', { applicationName: this.cfg.app, filter: { allowed: types.map((type) => ({ type })) } });
  }

  private async call(resource: string, operation: string, params: Record<string, unknown>): Promise<unknown> {
    const name = `${resource}.${operation}`;
    this.requestCount.set(name, (this.requestCount.get(name) ?? 0) + 1);
    const op = (this.client[resource] as Record<string, Operation> | undefined)?.[operation];
    if (!op) throw new AriError(name, 'operation not offered by this Asterisk', false);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AriError(name, `no answer within ${this.cfg.request_timeout_ms} ms`, false)), this.cfg.request_timeout_ms);
    });
    try {
      return await Promise.race([Promise.resolve(op(params)), timeout]);
    } catch (err) {
      if (err instanceof AriError) throw err;
      const message = (err as Error).message ?? String(err);
      throw new AriError(name, message.slice(0, 200), /not found/i.test(message));
    } finally {
      clearTimeout(timer);
    }
  }
}
