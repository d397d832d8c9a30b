/**
 * Twin's callbacks, end to end: the warm-up names our URL (with the secret in its path), a POST
 * there is stored durably before the 200, de-duplicated, and forwarded to the customer's URL(s).
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { parseJsonObject } from '../twin/auth.js';
import { TwinHttp } from '../twin/http.js';
import { CallbackForwarder } from './forwarder.js';
import { CallbackStore } from './store.js';

export interface CallbacksConfig {
  public_url: string;
  secret: string;
  dir: string;
  forward_to: string[];
  forward_timeout_ms: number;
  retry_for_h: number;
}

export type CallbackResult = 'stored' | 'duplicate' | 'malformed' | 'forwarded' | 'retry' | 'gave-up';

/** Deeper bodies are kept in malformed/ and answered 400: storing them would overflow the stack. */
export const MAX_CALLBACK_DEPTH = 64;

/** The path Twin posts to; the secret authenticates Twin (it cannot send headers of our choosing). */
export const CALLBACK_PATH = '/v1/twin/callbacks/';

export function ownCallbackUrl(cfg: Pick<CallbacksConfig, 'public_url' | 'secret'>): string {
  return new URL(CALLBACK_PATH + encodeURIComponent(cfg.secret), cfg.public_url).href;
}

export class Callbacks {
  private readonly store: CallbackStore;
  private readonly forwarder: CallbackForwarder;
  private readonly http = new TwinHttp({ maxConnections: 4, maxWaitMs: 60_000 });

  constructor(
    private readonly cfg: CallbacksConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onResult: (result: CallbackResult) => void = () => {},
  ) {
    this.store = new CallbackStore(cfg.dir);
    this.forwarder = new CallbackForwarder(this.store, {
      timeoutMs: cfg.forward_timeout_ms, retryForMs: cfg.retry_for_h * 3600_000, clock, log, http: this.http, onResult,
    });
  }

  get pending(): number {
    return this.forwarder.pending;
  }

  /** Opens the store and carries on forwarding what a previous run left. */
  async start(): Promise<void> {
    const pending = await this.store.open();
    if (pending.length > 0) this.log.info({ pending: pending.length }, 'forwarding Twin callbacks left by the previous run');
    this.forwarder.start(pending);
  }

  async stop(): Promise<void> {
    await this.forwarder.stop();
    await this.http.close();
  }

  /**
   * A POST from Twin: 200 once on disk (or already there); 400 (kept in malformed/) when unreadable
   * or nested deeper than MAX_CALLBACK_DEPTH, as Twin's retries could never be stored either.
   */
  async receive(raw: Buffer): Promise<{ status: 200 | 400; body: Record<string, unknown> }> {
    const now = this.clock.now();
    const body = parseJsonObject(raw.toString('utf8'));
    if (!body) return this.keepMalformed(raw, now, 'body must be a JSON object');
    if (nestedDeeperThan(body, MAX_CALLBACK_DEPTH)) return this.keepMalformed(raw, now, `body is nested deeper than ${MAX_CALLBACK_DEPTH} levels`);
    const { result, callback } = await this.store.add(body, this.cfg.forward_to, now);
    this.onResult(result);
    if (result === 'stored') {
      this.log.info({ callbackKey: callback.key, type: callback.type }, 'Twin callback stored');
      this.forwarder.enqueue(callback);
    }
    return { status: 200, body: { id: callback.key, result } };
  }

  private async keepMalformed(raw: Buffer, now: number, reason: string): Promise<{ status: 400; body: Record<string, unknown> }> {
    const file = await this.store.keepMalformed(raw, now);
    this.onResult('malformed');
    this.log.warn({ file: `malformed/${file}`, bytes: raw.length, reason }, 'Twin callback cannot be stored; kept for inspection');
    return { status: 400, body: { error: reason, kept: file } };
  }
}

/** Walks the value with a stack of its own (a recursive walk is what overflows), stopping at the limit. */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  for (let next = stack.pop(); next; next = stack.pop()) {
    if (next.value === null || typeof next.value !== 'object') continue;
    if (next.depth > limit) return true;
    for (const child of Object.values(next.value)) stack.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}
