/**
 * Twin stand-in (instant, or with a warm-up delay drawn per request like a bot getting ready): IAM login and the warm-up (POST /api/v1/calls). Not the project's
 * TwinSimulator because the DIY dialplan needs a token it can be given up front (a global variable)
 * rather than a fresh JWT, and the benchmark needs callerId → returned id to find each call's
 * bot INVITE (it carries X-TWIN-CallId: <id>).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseJson, sendJson } from '../../src/sim/http-util.js';

/** A scripted stretch of Twin trouble (faults.ts), epoch ms: warm-ups arriving in [from, to) answer `status`, or are held `delayMs`. */
export type TwinPhase = { from: number; to: number } & ({ kind: 'fail'; status: number } | { kind: 'slow'; delayMs: number });

export class TwinStandIn {
  readonly token = `bench-${randomUUID()}`;
  readonly email = 'bench@example.test';
  readonly password = 'bench-password';
  private readonly server: Server;
  /** Twin id → callerId of the warm-up that got it. */
  readonly numberById = new Map<string, string>();
  /** callerId → how long its warm-up was held (with a delay range). */
  readonly delayByNumber = new Map<string, number>();
  warmups = 0;
  refused = 0;
  /** Warm-ups that a phase of `script` failed or held. */
  failed = 0;
  held = 0;
  /** Phases of trouble, by arrival time of the warm-up. */
  script: TwinPhase[] = [];
  port = 0;

  /** delayMs: each warm-up is answered after a uniform draw in [min, max] ms (the real Twin answers when the bot is ready). */
  constructor(private readonly delayMs?: { min: number; max: number }) {
    this.server = createServer((req, res) => this.handle(req, res));
    // Keep-alive connections from the product: do not let Node close them under it.
    this.server.keepAliveTimeout = 60_000;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : port;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && req.url === '/api/v1/auth/login') return this.login(body, res);
      if (req.method === 'POST' && req.url === '/api/v1/calls') return this.warmup(req, body, res);
      sendJson(res, 404, { message: 'not found' });
    });
  }

  private login(raw: string, res: ServerResponse): void {
    const body = parseJson(raw) as { email?: string; password?: string } | undefined;
    if (body?.email !== this.email || body?.password !== this.password) return sendJson(res, 401, { message: 'invalid credentials' });
    sendJson(res, 200, { token: this.token });
  }

  private warmup(req: IncomingMessage, raw: string, res: ServerResponse): void {
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.refused += 1;
      return sendJson(res, 401, { message: 'token expired' });
    }
    const calls = (parseJson(raw) as { calls?: { callId?: unknown; callerId?: unknown }[] } | undefined)?.calls;
    if (!Array.isArray(calls) || calls.length === 0) {
      this.refused += 1;
      return sendJson(res, 400, { message: 'calls is required' });
    }
    const now = Date.now();
    const phase = this.script.find((p) => now >= p.from && now < p.to);
    if (phase?.kind === 'fail') {
      this.failed += calls.length;
      return sendJson(res, phase.status, { message: 'scripted failure' });
    }
    const answer: Record<string, string> = {};
    let delay = this.delayMs ? this.delayMs.min + Math.random() * (this.delayMs.max - this.delayMs.min) : 0;
    if (phase?.kind === 'slow') {
      delay = phase.delayMs;
      this.held += calls.length;
    }
    for (const call of calls) {
      const id = randomUUID();
      answer[String(call.callId)] = id;
      this.numberById.set(id, String(call.callerId));
      if (this.delayMs) this.delayByNumber.set(String(call.callerId), delay);
      this.warmups += 1;
    }
    if (delay > 0) setTimeout(() => { if (!res.destroyed) sendJson(res, 200, answer); }, delay);
    else sendJson(res, 200, answer);
  }
}
