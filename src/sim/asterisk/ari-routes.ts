/**
 * The ARI REST interface of the simulated Asterisk: authentication, the recorded api-docs that
 * ari-client reads, one route per request the product makes, Asterisk's error bodies, and the
 * request counters and fault knobs tests turn.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { readBody, sendJson } from '../http-util.js';
import { answer, ASTERISK_ID, asteriskTime, bridgeJson, channelJson, type AriSimOptions, type SimBridge } from './model.js';
import { AriRefer } from './refer.js';

/** The recorded api-docs live beside this file in src/; the built copy in dist/ reads them from there. */
const API_DOCS_DIR = [new URL('./api-docs/', import.meta.url), new URL('../../../../src/sim/asterisk/api-docs/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((dir) => existsSync(dir)) ?? '';

export abstract class AriRoutes extends AriRefer {
  constructor(options: AriSimOptions) {
    super(options);
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  protected readonly server: Server;
  private readonly docs = new Map<string, string>();
  private readonly globals = new Map<string, string>();
  /** REST requests received: "METHOD /path-pattern" → count. */
  readonly requests = new Map<string, number>();
  protected readonly byCall = new Map<string, number>();
  /** Holds a reply back this many ms (the answer is computed when the request arrives). */
  delayReply?: (method: string, path: string) => number;
  /** Answers a request with this HTTP status (an error body) without carrying it out; undefined: handled as usual. */
  failRequest?: (method: string, path: string) => number | undefined;
  /** Carries a request out, then drops its connection without answering (a reset at the wrong moment). */
  loseReply?: (method: string, path: string) => boolean;
  /** Drops a request's connection before carrying it out (a reset as it arrives). */
  dropRequest?: (method: string, path: string) => boolean;
  /** For the benchmark: every REST request (after auth). */
  onRequest?: (method: string, path: string) => void;

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
    if (this.dropRequest?.(req.method ?? 'GET', path + url.search)) {
      res.socket?.destroy();
      return;
    }
    const failWith = this.failRequest?.(req.method ?? 'GET', path);
    const [status, answer] = failWith !== undefined ? [failWith, { message: 'Internal Server Error' }] : this.route(req.method ?? 'GET', segs, q, body);
    if (failWith === undefined && this.loseReply?.(req.method ?? 'GET', path)) {
      res.socket?.destroy();
      this.afterReply.splice(0).forEach((fn) => fn());
      return;
    }
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
      // Answers a caller left ringing (Ring); an answered channel stays as it is.
      case 'POST channels/:id/answer': return this.withStasisChannel(id!, (ch) => {
        // ChannelStateChange (Up) comes before the reply (recording ringing-caller).
        if (ch.state !== 'Up') {
          answer(ch);
          this.emit(ch.app, 'ChannelStateChange', { channel: channelJson(ch) });
        }
        return [204, undefined];
      });
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

  private withBridge(id: string, fn: (b: SimBridge) => [number, unknown]): [number, unknown] {
    const b = this.bridges.get(id);
    return b ? fn(b) : [404, { message: 'Bridge not found' }];
  }
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
