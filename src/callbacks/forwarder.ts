/**
 * Delivers stored Twin callbacks to the customer's URL(s): each URL until it answers 2xx, with a
 * doubling delay between attempts (1 s up to 5 min), for callbacks.retry_for_h. The state of every
 * attempt is on disk, so a restart carries on where it stopped. Delivery is at least once: a crash
 * between the customer's 2xx and our fsync sends that callback again, with the same
 * X-Twin-Connector-Callback-Id header so the customer can drop the copy.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { TwinHttp } from '../twin/http.js';
import type { CallbackStore, StoredCallback } from './store.js';

export interface ForwarderOptions {
  timeoutMs: number;
  retryForMs: number;
  clock: Clock;
  log: Logger;
  /** Any JSON-over-HTTP pool; the daemon gives one of its own to the customer's URLs. */
  http: TwinHttp;
  onResult?: (result: 'forwarded' | 'retry' | 'gave-up') => void;
}

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 5 * 60_000;
/** Deliveries in flight at once. */
const PARALLEL = 8;
/** Delivered callbacks are remembered (for de-duplication) a day past Twin's 24 h of retries. */
const REMEMBER_MS = 48 * 3600_000;
const PRUNE_EVERY_MS = 3600_000;

export class CallbackForwarder {
  private readonly queue = new Map<string, StoredCallback>();
  private wake = new AbortController();
  private stopped = false;
  private running?: Promise<void>;
  private lastPrune = 0;

  constructor(private readonly store: CallbackStore, private readonly options: ForwarderOptions) {}

  get pending(): number {
    return this.queue.size;
  }

  start(pending: StoredCallback[]): void {
    for (const callback of pending) this.queue.set(callback.key, callback);
    this.lastPrune = this.options.clock.now();
    this.running = this.loop();
  }

  enqueue(callback: StoredCallback): void {
    this.queue.set(callback.key, callback);
    this.wake.abort();
  }

  /** Stops after the attempts in flight (each bounded by the forward timeout); pending ones stay on disk. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { clock, log } = this.options;
    while (!this.stopped) {
      // Made before anything awaits: a stop() or enqueue() during this round cuts its sleep short
      // (one made after the round missed a stop() that came during a prune, and the loop slept on).
      this.wake = new AbortController();
      const now = clock.now();
      const due = [...this.queue.values()].filter((cb) => nextAttempt(cb) <= now).slice(0, PARALLEL);
      if (due.length > 0) {
        let diskFailed = false;
        await Promise.all(due.map((cb) => this.attempt(cb).catch((err: unknown) => {
          diskFailed = true;
          log.error({ err, callbackKey: cb.key }, 'could not save the state of a Twin callback; will try again');
        })));
        if (diskFailed) await clock.sleep(FIRST_RETRY_MS, this.wake.signal); // a full or broken disk: do not spin
        continue;
      }
      await this.pruneNow(now);
      let next = now + PRUNE_EVERY_MS;
      for (const callback of this.queue.values()) next = Math.min(next, nextAttempt(callback));
      await clock.sleep(next - now, this.wake.signal);
    }
  }

  /** One round for a callback: every URL whose turn has come. */
  private async attempt(callback: StoredCallback): Promise<void> {
    const { clock, log } = this.options;
    const now = clock.now();
    await Promise.all(Object.entries(callback.deliveries)
      .filter(([, d]) => d.deliveredAt === undefined && d.nextAt <= now)
      .map(([url, d]) => this.deliver(callback, url, d)));
    const left = Object.values(callback.deliveries).filter((d) => d.deliveredAt === undefined);
    if (left.length === 0) {
      await this.store.finish(callback, 'delivered');
      this.queue.delete(callback.key);
      log.info({ callbackKey: callback.key, type: callback.type }, 'Twin callback forwarded');
    } else if (clock.now() - callback.receivedAt > this.options.retryForMs) {
      await this.store.finish(callback, 'failed');
      this.queue.delete(callback.key);
      this.options.onResult?.('gave-up');
      log.error({ callbackKey: callback.key, type: callback.type, lastError: left[0]?.lastError, file: `failed/${callback.key}.json` },
        'gave up forwarding a Twin callback');
    } else {
      await this.store.update(callback);
    }
  }

  private async deliver(callback: StoredCallback, url: string, delivery: StoredCallback['deliveries'][string]): Promise<void> {
    const { clock, http, timeoutMs } = this.options;
    delivery.attempts += 1;
    let error: string;
    try {
      const res = await http.postJson(url, callback.body, {
        headers: { 'x-twin-connector-callback-id': callback.key }, timeoutMs,
      });
      if (res.status >= 200 && res.status < 300) {
        delivery.deliveredAt = clock.now();
        delete delivery.lastError;
        this.options.onResult?.('forwarded');
        return;
      }
      error = `HTTP ${res.status}`;
    } catch (err) {
      error = (err as Error).message;
    }
    delivery.lastError = error;
    delivery.nextAt = clock.now() + Math.min(FIRST_RETRY_MS * 2 ** (delivery.attempts - 1), MAX_RETRY_MS);
    this.options.onResult?.('retry');
    if (delivery.attempts === 1 || delivery.attempts % 10 === 0) {
      this.options.log.warn({ callbackKey: callback.key, forwardTo: safeUrl(url), attempts: delivery.attempts, error }, 'forwarding a Twin callback failed; will retry');
    }
  }

  private async pruneNow(now: number): Promise<void> {
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.store.prune(now, REMEMBER_MS).catch(() => {});
  }
}

/** When the callback's next URL is due; now-ish when every URL is done but finishing it failed. */
function nextAttempt(callback: StoredCallback): number {
  let next = Infinity;
  for (const d of Object.values(callback.deliveries)) if (d.deliveredAt === undefined) next = Math.min(next, d.nextAt);
  return next === Infinity ? callback.receivedAt : next;
}

/** A customer URL may carry a token in its path, query or user part: log only its origin. */
function safeUrl(url: string): string {
  return new URL(url).origin;
}
