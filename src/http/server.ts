/**
 * The product's HTTP port. The dialer API: `POST /v1/calls` places an outbound call like the
 * CLI's `call` and answers 202 with its id; `GET /v1/calls/{id}` gives its state and outcome.
 * Bearer token from http.api_token; bad bodies get a 400 naming the field.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { CallState, OutboundResult } from '../outbound/outbound.js';
import { parseCallRequest, RequestError, type CallRequest } from '../outbound/request.js';

const MAX_BODY_BYTES = 16 * 1024;
/** Finished calls remembered for GET; the oldest are forgotten first. */
const KEEP_FINISHED = 10_000;

export interface DialerHost {
  config(): Config;
  placeCall(request: CallRequest): { id: string; result: Promise<OutboundResult> };
  onProgress(listener: (p: { id: string; state: CallState }) => void): void;
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

  constructor(private readonly cfg: NonNullable<Config['http']>, private readonly host: DialerHost, private readonly log: Logger) {
    this.server = createServer((req, res) => void this.handle(req, res));
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

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/v1/calls' || path.startsWith('/v1/calls/')) {
        this.authorize(req);
        if (path === '/v1/calls' && req.method === 'POST') return send(res, 202, this.placeCall(await readJson(req)));
        const id = decodeURIComponent(path.slice('/v1/calls/'.length));
        if (id && req.method === 'GET') return send(res, 200, this.describe(id));
        throw new HttpError(405, 'use POST /v1/calls or GET /v1/calls/{id}');
      }
      throw new HttpError(404, 'not found');
    } catch (err) {
      if (err instanceof HttpError) {
        const headers = err.status === 401 ? { 'www-authenticate': 'Bearer' } : undefined;
        return send(res, err.status, err.field ? { error: err.message, field: err.field } : { error: err.message }, headers);
      }
      this.log.error({ err }, 'HTTP request failed');
      return send(res, 500, { error: 'internal error' });
    }
  }

  private authorize(req: IncomingMessage): void {
    const expected = this.cfg.api_token;
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

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON', '(body)');
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
