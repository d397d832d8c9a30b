/**
 * Twin simulator: IAM login and the warm-up endpoint, on loopback, with answers scripted
 * per call. Used by tests, the benchmark and the demo.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SignJWT } from 'jose';
import { closeServer, listen, parseJson, readBody, sendJson } from './http-util.js';

export type TwinBehaviour =
  | { kind: 'id' }
  | { kind: 'null' }
  | { kind: 'status'; status: number }
  /** Waits, then answers as `then` (default: an id). */
  | { kind: 'slow'; delayMs: number; then?: TwinBehaviour }
  /** Waits until the promise settles (a test lets it go), then answers as `then`. */
  | { kind: 'held'; until: Promise<unknown>; then?: TwinBehaviour }
  /**
   * Blocks this whole process for `ms` (a busy loop), then answers as `then`: the CPU-starved box
   * of issue 22 item 5, where the product could not run while Twin's answer was due.
   */
  | { kind: 'stall'; ms: number; then?: TwinBehaviour }
  | { kind: 'garbage' }
  /** 200 without this call's key. */
  | { kind: 'missing' };

export interface WarmupRecord {
  body: { returnAnswerAsync?: boolean; calls?: { callId: string; callerId: string; number: string; variables?: Record<string, string> }[] };
  /** Raw request text, to check how strangers' values were escaped. */
  raw: string;
  authorization?: string;
  status: number;
  /** What the simulator answered. */
  answer?: string;
  receivedAt: number;
  respondedAt: number;
}

export interface TwinSimOptions {
  email?: string;
  password?: string;
  tokenTtlS?: number;
}

export class TwinSimulator {
  readonly email: string;
  readonly password: string;
  private readonly server: Server;
  private readonly secret = new TextEncoder().encode(randomUUID());
  private readonly validTokens = new Set<string>();
  private behaviour: (callId: string, call: { number?: string }) => TwinBehaviour = () => ({ kind: 'id' });
  port = 0;
  logins = 0;
  readonly warmups: WarmupRecord[] = [];
  /** Warm-up requests being answered now, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Keep the last N warm-up records only (the benchmark makes many). */
  keepRecords = Infinity;
  /** For the benchmark: each answered call's time inside the simulator, ms. */
  onAnswered?: (callId: string, ms: number) => void;

  constructor(private readonly options: TwinSimOptions = {}) {
    this.email = options.email ?? 'bot@example.test';
    this.password = options.password ?? 'twin-secret';
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<string> {
    this.port = await listen(this.server, port);
    return this.url;
  }

  stop(): Promise<void> {
    return closeServer(this.server);
  }

  /** Decide each call's answer (by its callId or number); the default answers an id. */
  script(fn: (callId: string, call: { number?: string }) => TwinBehaviour): void {
    this.behaviour = fn;
  }

  /** Every token issued so far is now refused with 401 (as after an IAM key rotation). */
  expireTokens(): void {
    this.validTokens.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    if (req.method === 'POST' && req.url === '/api/v1/auth/login') return this.login(raw, res);
    if (req.method === 'POST' && req.url === '/api/v1/calls') return this.warmup(req, raw, res);
    sendJson(res, 404, { message: 'not found' });
  }

  private async login(raw: string, res: ServerResponse): Promise<void> {
    this.logins += 1;
    const body = parseJson(raw) as { email?: string; password?: string } | undefined;
    if (body?.email !== this.email || body?.password !== this.password) return sendJson(res, 401, { message: 'invalid credentials' });
    sendJson(res, 200, { token: await this.issue() });
  }

  private async issue(): Promise<string> {
    const token = await new SignJWT({ sub: this.email })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(`${this.options.tokenTtlS ?? 3600}s`)
      .setJti(randomUUID())
      .sign(this.secret);
    this.validTokens.add(token);
    return token;
  }

  private async warmup(req: IncomingMessage, raw: string, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const authorization = req.headers.authorization;
    const body = (parseJson(raw) ?? {}) as WarmupRecord['body'];
    const record: WarmupRecord = { body, raw, authorization, status: 0, receivedAt, respondedAt: 0 };
    this.warmups.push(record);
    if (this.warmups.length > this.keepRecords) this.warmups.shift();
    const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
    if (!this.validTokens.has(token)) return this.answer(res, record, 401, { message: 'token expired' });
    const calls = Array.isArray(body.calls) ? body.calls : [];
    if (calls.length === 0) return this.answer(res, record, 400, { message: 'calls is required' });

    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.once('close', () => { this.inFlight -= 1; });
    const answer: Record<string, string | null> = {};
    for (const call of calls) {
      const b = await settleBehaviour(this.behaviour(call.callId, call));
      if (b.kind === 'status') return this.answer(res, record, b.status, { message: 'not ready' });
      if (b.kind === 'garbage') return this.answerRaw(res, record, 200, '<html>gateway says hi</html>');
      if (b.kind === 'null') answer[call.callId] = null;
      else if (b.kind === 'id') answer[call.callId] = randomUUID();
    }
    this.answer(res, record, 200, answer);
  }

  private answer(res: ServerResponse, record: WarmupRecord, status: number, body: unknown): void {
    this.answerRaw(res, record, status, JSON.stringify(body));
  }

  private answerRaw(res: ServerResponse, record: WarmupRecord, status: number, text: string): void {
    record.status = status;
    record.answer = text;
    record.respondedAt = performance.now();
    for (const call of record.body.calls ?? []) this.onAnswered?.(call.callId, record.respondedAt - record.receivedAt);
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/** Runs the waiting kinds (slow, held, stall) down to the answer to give. */
async function settleBehaviour(first: TwinBehaviour): Promise<TwinBehaviour> {
  let b = first;
  for (;;) {
    if (b.kind === 'slow') await new Promise((r) => setTimeout(r, b.kind === 'slow' ? b.delayMs : 0));
    else if (b.kind === 'held') await b.until.catch(() => undefined);
    else if (b.kind === 'stall') busyWait(b.ms);
    else return b;
    b = b.then ?? { kind: 'id' };
  }
}

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* the process can do nothing else meanwhile */ }
}
