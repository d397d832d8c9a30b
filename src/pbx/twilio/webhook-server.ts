/**
 * The port Twilio's webhooks arrive on. Every request must be a POST form signed by Twilio for
 * this account (X-Twilio-Signature over the public URL Twilio called): anything else is refused
 * before it can start a warm-up. The auth token is never logged, nor put in an error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { InboundTwilioConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { isSignedByTwilio } from './signature.js';

/** Twilio's call webhooks are a few hundred bytes to a few KB of form fields. */
export const MAX_WEBHOOK_BYTES = 64 * 1024;

/**
 * voice, status: the number's webhooks. Per call: dial-action (the bot's <Dial> ended), bot-status
 * (the bot answered), refer (the bot sent a SIP REFER: <Dial referUrl>), transfer-action (the <Dial>
 * to the person the bot transferred to ended). outbound-*: calls the product placed (outbound_status).
 */
export type WebhookKind = 'voice' | 'status' | 'dial-action' | 'bot-status' | 'refer' | 'transfer-action' | OutboundWebhookKind;

/** An outbound call's status callback, its <Dial> action and its <Sip> status: matched by CallSid / ParentCallSid. */
export type OutboundWebhookKind = 'outbound-status' | 'outbound-dial-action' | 'outbound-bot-status';
const OUTBOUND_KINDS: ReadonlySet<string> = new Set(['outbound-status', 'outbound-dial-action', 'outbound-bot-status']);

const PER_CALL_KINDS: ReadonlySet<string> = new Set(['dial-action', 'bot-status', 'refer', 'transfer-action']);

/** A signed request of the account: which webhook, for which call, with its form fields. */
export interface TwilioRequest {
  kind: WebhookKind;
  /** From the path of per-call URLs (dial-action, bot-status, refer, transfer-action), else undefined. */
  pathCallSid?: string;
  params: Record<string, string>;
}

class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const CALL_SID = /^CA[0-9a-fA-F]{32}$/;

export class WebhookServer {
  private readonly server: Server;
  private readonly basePath: string;
  private readonly publicOrigin: string;
  /** Requests refused (403/413/…), for the log's rate and tests. */
  refused = 0;

  constructor(
    private readonly cfg: InboundTwilioConfig,
    private readonly log: Logger,
    private readonly handle: (request: TwilioRequest, res: ServerResponse) => void,
  ) {
    const pub = new URL(cfg.public_url);
    this.publicOrigin = pub.origin;
    this.basePath = pub.pathname.replace(/\/+$/, '');
    this.server = createServer((req, res) => void this.receive(req, res));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen for Twilio on ${this.cfg.listen_host}:${this.cfg.listen_port}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`)));
      this.server.listen(this.cfg.listen_port, this.cfg.listen_host, () => resolve());
    });
    this.log.info({ twilio: `${this.cfg.listen_host}:${this.port}`, publicUrl: this.cfg.public_url }, 'listening for Twilio webhooks');
  }

  get port(): number {
    return (this.server.address() as { port: number } | null)?.port ?? 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The public URL of one of our webhooks, as put in TwiML (and as Twilio will sign it). */
  url(kind: WebhookKind, callSid?: string): string {
    return `${this.publicOrigin}${this.basePath}/${kind}${callSid ? `/${callSid}` : ''}`;
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const route = this.route(req);
      const body = await readForm(req);
      const params = Object.fromEntries(new URLSearchParams(body));
      this.authenticate(req, params);
      this.handle({ ...route, params }, res);
    } catch (err) {
      if (!(err instanceof Refusal)) {
        this.log.error({ err }, 'Twilio webhook failed');
        return reply(res, 500, 'internal error');
      }
      this.refused += 1;
      // A wrong public_url or auth token shows here: said without the token, the signature or the body.
      this.log.warn({ status: err.status, path: (req.url ?? '').slice(0, 120), reason: err.message }, 'Twilio webhook refused');
      reply(res, err.status, err.message);
      if (err.status === 413) req.resume();
    }
  }

  private route(req: IncomingMessage): Omit<TwilioRequest, 'params'> {
    if (req.method !== 'POST') throw new Refusal(405, 'Twilio webhooks are POSTed');
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith(`${this.basePath}/`)) throw new Refusal(404, 'not found');
    const [kind, callSid, ...rest] = path.slice(this.basePath.length + 1).split('/');
    if (rest.length > 0) throw new Refusal(404, 'not found');
    if ((kind === 'voice' || kind === 'status' || OUTBOUND_KINDS.has(kind ?? '')) && callSid === undefined) return { kind: kind as WebhookKind };
    if (kind !== undefined && PER_CALL_KINDS.has(kind) && callSid !== undefined && CALL_SID.test(callSid)) return { kind: kind as WebhookKind, pathCallSid: callSid };
    throw new Refusal(404, 'not found');
  }

  /** 403 for an unsigned or forged request, or one of another account: no detail beyond that. */
  private authenticate(req: IncomingMessage, params: Record<string, string>): void {
    const signature = req.headers['x-twilio-signature'];
    if (typeof signature !== 'string' || signature === '') throw new Refusal(403, 'missing X-Twilio-Signature');
    if (params.AccountSid !== this.cfg.account_sid) throw new Refusal(403, 'not this account\'s request');
    if (!isSignedByTwilio(this.cfg.auth_token, signature, `${this.publicOrigin}${req.url ?? ''}`, params)) {
      throw new Refusal(403, 'X-Twilio-Signature does not match (check twilio.public_url and auth_token)');
    }
  }
}

/** The form body, at most MAX_WEBHOOK_BYTES (events, not an async iterator: this runs for every webhook). */
function readForm(req: IncomingMessage): Promise<string> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) return Promise.reject(new Refusal(415, 'expected a form (application/x-www-form-urlencoded)'));
  if (Number(req.headers['content-length'] ?? 0) > MAX_WEBHOOK_BYTES) return Promise.reject(new Refusal(413, 'body too large'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_WEBHOOK_BYTES) return void chunks.push(chunk);
      req.off('data', onData);
      reject(new Refusal(413, 'body too large'));
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function reply(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return;
  const body = JSON.stringify({ error: message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(status === 413 ? { connection: 'close' } : {}) });
  res.end(body);
}
