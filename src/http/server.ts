/**
 * The product's HTTP port (http.listen_host:listen_port):
 *   GET  /healthz, /readyz         the process is alive; it can take calls (PBX connected, Twin reachable)
 *   GET  /v1/status                why not ready, in detail (bearer token from http.api_token)
 *   GET  /metrics                  Prometheus
 *   GET  /v1/trunk                 trunk state, cool-down end, active calls, capacity
 *   POST /v1/twin/callbacks/{secret}  Twin's callbacks: stored durably, then forwarded
 *   POST /v1/calls, GET /v1/calls/{id}  the dialer API (bearer token from http.api_token)
 * Bad requests get a JSON error naming what is wrong. The port may face strangers: idle connections
 * are closed after http.idle_timeout_ms, and one over http.max_connections gets a 503.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { CALLBACK_PATH } from '../callbacks/callbacks.js';
import type { Config } from '../config/schema.js';
import type { TrunkSnapshot } from '../core/trunk.js';
import type { Logger } from '../log.js';
import type { CallState, OutboundResult } from '../outbound/outbound.js';
import { parseCallRequest, RequestError, type CallRequest } from '../outbound/request.js';

const MAX_BODY_BYTES = 16 * 1024;
/** Callbacks may carry a conversation's results. */
const MAX_CALLBACK_BYTES = 1024 * 1024;
/** Finished calls remembered for GET; the oldest are forgotten first. */
const KEEP_FINISHED = 10_000;
/** How often node checks the headers and request timeouts of open connections (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1000;
/** Written on the raw socket of a connection over http.max_connections: no parsing, no handler. */
const BUSY_BODY = '{"error":"too many connections"}';
const BUSY_RESPONSE = 'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n'
  + `content-length: ${BUSY_BODY.length}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${BUSY_BODY}`;
/** A refused connection stays open at most this long, for its client to read the 503. */
const REFUSED_LINGER_MS = 1000;
/** Past the cap plus this many refusals still lingering, node drops new connections unanswered. */
const REFUSALS_IN_FLIGHT = 100;

/** Why the product cannot take calls: a short code for anyone, the detail for the log and /v1/status. */
export interface NotReady {
  /** e.g. stopping, pbx_down:asterisk, twin_trunk_throttled, twin_login_failed, twin_login_slow */
  reason: string;
  detail: string;
}

export interface HttpHost {
  config(): Config;
  placeCall(request: CallRequest): { id: string; result: Promise<OutboundResult> };
  onProgress(listener: (p: { id: string; state: CallState }) => void): void;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Why the product cannot take calls now; empty when it can. */
  readiness(): Promise<NotReady[]>;
  /** Reason codes of a degraded but ready product, e.g. cluster_unreachable (on the local share). */
  degraded?(): string[];
  trunk(): TrunkSnapshot;
  receiveCallback?(raw: Buffer): Promise<{ status: number; body: unknown }>;
}

interface CallRecord {
  id: string;
  state: CallState;
  request: CallRequest;
  createdAt: string;
  result?: OutboundResult;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

export class HttpServer {
  private readonly server: Server;
  private readonly calls = new Map<string, CallRecord>();
  private readonly finished: string[] = [];
  private draining = false;
  private readonly refused = new WeakSet<Socket>();
  private refusing = false;
  /** Connections open now, and those answered 503 so far (metrics). */
  openConnections = 0;
  refusedConnections = 0;

  constructor(private readonly cfg: NonNullable<Config['http']>, private readonly host: HttpHost, private readonly log: Logger) {
    this.server = createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS }, (req, res) => void this.handle(req, res));
    // The callback URL may face the internet: a client that sends its request slowly is cut off.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = cfg.idle_timeout_ms;
    this.server.maxConnections = cfg.max_connections + REFUSALS_IN_FLIGHT;
    // Ahead of node's own listener, so a refused connection is answered before node reads from it.
    this.server.prependListener('connection', (socket: Socket) => this.admit(socket));
    host.onProgress(({ id, state }) => {
      const call = this.calls.get(id);
      if (call && call.state !== 'ended') call.state = state;
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen for HTTP on ${this.cfg.listen_host}:${this.cfg.listen_port}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`)));
      this.server.listen(this.cfg.listen_port, this.cfg.listen_host, () => resolve());
    });
    this.log.info({ http: `${this.cfg.listen_host}:${this.port}` }, 'HTTP listening');
  }

  get port(): number {
    return (this.server.address() as { port: number } | null)?.port ?? 0;
  }

  /** Stopping: the dialer API answers 503; health, metrics and callbacks go on until close(). */
  drain(): void {
    this.draining = true;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Counts the connection, or answers 503 when http.max_connections are open. A connection that
   * never sends a request is closed after the idle timeout (node's own timeout handler destroys it);
   * node's headersTimeout alone is checked only every TIMEOUT_CHECK_MS.
   */
  private admit(socket: Socket): void {
    if (this.openConnections >= this.cfg.max_connections) return this.refuse(socket);
    this.refusing = false;
    this.openConnections += 1;
    socket.once('close', () => { this.openConnections -= 1; });
    socket.setTimeout(this.cfg.idle_timeout_ms);
  }

  /** A cheap answer instead of a silent drop; warned once per spell at the cap, counted in metrics. */
  private refuse(socket: Socket): void {
    this.refused.add(socket);
    this.refusedConnections += 1;
    if (!this.refusing) {
      this.refusing = true;
      this.log.warn({ maxConnections: this.cfg.max_connections }, 'HTTP port at http.max_connections: answering 503 to new connections');
    }
    socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
    // Not destroyed at once: closing with the request unread would reset the connection before the client reads the 503.
    socket.end(BUSY_RESPONSE);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.refused.has(req.socket)) return; // answered 503 already
    req.socket.setTimeout(0); // a request is in: the headers/request timeouts and keep-alive take over
    try {
      const path = requestPath(req.url);
      if (path.startsWith(CALLBACK_PATH)) return await this.callback(req, res, path);
      if (path === '/v1/calls' || path.startsWith('/v1/calls/')) return await this.dialerApi(req, res, path);
      if (path === '/v1/status') return await this.status(req, res);
      if (req.method !== 'GET') throw new HttpError(405, `use GET ${path}`);
      switch (path) {
        case '/healthz': return send(res, 200, { status: 'ok' });
        case '/readyz': {
          // Strangers may probe this: codes only, no hosts, no login errors.
          const reasons = (await this.host.readiness()).map((problem) => problem.reason);
          const degraded = this.host.degraded?.() ?? [];
          return send(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons, ...(degraded.length > 0 ? { degraded } : {}) });
        }
        case '/metrics': {
          const { contentType, body } = await this.host.metrics();
          res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
          return void res.end(body);
        }
        case '/v1/trunk': return send(res, 200, describeTrunk(this.host.trunk()));
      }
      throw new HttpError(404, 'not found');
    } catch (err) {
      if (err instanceof HttpError) {
        // Strangers' garbage is no event: a debug line at most, never a stack.
        if (err.status === 400 || err.status === 413) this.log.debug({ status: err.status, error: err.message }, 'bad HTTP request');
        const headers = err.status === 401 ? { 'www-authenticate': 'Bearer' } : undefined;
        return send(res, err.status, err.field ? { error: err.message, field: err.field } : { error: err.message }, headers);
      }
      this.log.error({ err }, 'HTTP request failed');
      return send(res, 500, { error: 'internal error' });
    }
  }

  private async dialerApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    this.authorize(req);
    if (path === '/v1/calls' && req.method === 'POST') {
      if (this.draining) throw new HttpError(503, 'the product is stopping: no new calls');
      return send(res, 202, this.placeCall(await readJson(req)));
    }
    const id = decodeSegment(path.slice('/v1/calls/'.length));
    if (id && req.method === 'GET') return send(res, 200, this.describe(id));
    throw new HttpError(405, 'use POST /v1/calls or GET /v1/calls/{id}');
  }

  /** A wrong secret answers 404, as if there were nothing here. */
  private async callback(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const secret = this.host.config().callbacks?.secret;
    const given = decodeSegment(path.slice(CALLBACK_PATH.length));
    if (!this.host.receiveCallback || secret === undefined || !sameSecret(given, secret)) throw new HttpError(404, 'not found');
    if (req.method !== 'POST') throw new HttpError(405, 'Twin callbacks are POSTed');
    const { status, body } = await this.host.receiveCallback(await readBody(req, MAX_CALLBACK_BYTES));
    return send(res, status, body);
  }

  /** Readiness with its details, for the operator who holds the API token. */
  private async status(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.authorize(req);
    if (req.method !== 'GET') throw new HttpError(405, 'use GET /v1/status');
    const problems = await this.host.readiness();
    return send(res, 200, { ready: problems.length === 0, problems });
  }

  private authorize(req: IncomingMessage): void {
    const expected = this.host.config().http?.api_token; // reloadable
    if (!expected) throw new HttpError(403, 'the dialer API is off: set http.api_token in the config');
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!sameSecret(given, expected)) throw new HttpError(401, 'missing or wrong bearer token');
  }

  private placeCall(body: unknown): { id: string; state: CallState } {
    let request: CallRequest;
    try {
      request = parseCallRequest(body, this.host.config());
    } catch (err) {
      if (err instanceof RequestError) throw new HttpError(400, err.message, err.field);
      throw err;
    }
    const { id, result } = this.host.placeCall(request);
    const record: CallRecord = { id, state: 'queued', request, createdAt: new Date().toISOString() };
    this.calls.set(id, record);
    void result.then((r) => this.onFinished(record, r));
    return { id, state: record.state };
  }

  private onFinished(record: CallRecord, result: OutboundResult): void {
    record.state = 'ended';
    record.result = result;
    this.finished.push(record.id);
    if (this.finished.length > KEEP_FINISHED) this.calls.delete(this.finished.shift()!);
  }

  private describe(id: string): Record<string, unknown> {
    const call = this.calls.get(id);
    if (!call) throw new HttpError(404, 'no such call (unknown id, or finished long ago)');
    const { to, from, bot, pbx } = call.request;
    return { id, state: call.state, to, from, bot, pbx, createdAt: call.createdAt, ...(call.result ? { outcome: call.result } : {}) };
  }
}

/** Compares digests so neither the length nor the content of the token leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The request's path; a target that is no URL path is the client's mistake (400), not ours. */
function requestPath(target = '/'): string {
  try {
    return new URL(target, 'http://x').pathname;
  } catch {
    throw new HttpError(400, 'malformed URL');
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'malformed URL: bad percent-encoding');
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, 'the body was cut off'); // the client went away mid-body: nothing of ours failed
  }
  return Buffer.concat(chunks);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const raw = await readBody(req, MAX_BODY_BYTES);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON', '(body)');
  }
}

/** The trunk for dialers: times as ISO strings. */
function describeTrunk(trunk: TrunkSnapshot): Record<string, unknown> {
  return {
    state: trunk.state,
    since: new Date(trunk.since).toISOString(),
    cooldownUntil: trunk.cooldownUntil === undefined ? null : new Date(trunk.cooldownUntil).toISOString(),
    probeInFlight: trunk.probeInFlight,
    activeCalls: trunk.active,
    capacity: { maxConcurrentCalls: trunk.maxConcurrent, maxCallsPerSecond: trunk.maxPerSecond, atCapacity: trunk.atCapacity },
    lastFailure: trunk.lastFailure ?? null,
    ...(trunk.cluster ? { cluster: { ...trunk.cluster, failureNode: trunk.cluster.failureNode ?? null } } : {}),
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
