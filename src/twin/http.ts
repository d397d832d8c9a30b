import { Pool } from 'undici';
import { RequestSlots, SlotsFullError } from './slots.js';

export interface JsonResponse {
  status: number;
  /** Raw body text; callers parse it defensively. */
  text: string;
}

export interface PostOptions {
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Thrown for a failure; `code` is stable for logs and metrics. BUSY and STALLED are ours, not
 * Twin's: no free connection in time, or this process could not run when the answer was due.
 */
export class TwinHttpError extends Error {
  constructor(readonly code: 'TIMEOUT' | 'ABORTED' | 'NETWORK' | 'BUSY' | 'STALLED', message: string) {
    super(message);
    this.name = 'TwinHttpError';
  }
}

export interface TwinHttpLimits {
  /** Requests in flight at once (one keep-alive connection each). */
  maxConnections: number;
  /** How long a request may wait for a free connection. */
  maxWaitMs: number;
}

/**
 * A deadline timer that fired this much later than asked means this process could not run
 * (CPU starved, a long synchronous task): the answer may have sat unread in the socket.
 */
const STALL_MS = 250;

/** One keep-alive pool per Twin origin (IAM and CIS may live on different hosts). */
export class TwinHttp {
  private readonly pools = new Map<string, Pool>();
  private readonly slots: RequestSlots;

  constructor(private readonly limits: TwinHttpLimits) {
    this.slots = new RequestSlots(limits.maxConnections, limits.maxWaitMs);
  }

  /** Requests waiting for a free connection now. */
  get waiting(): number { return this.slots.waiting; }
  get inFlight(): number { return this.slots.inFlight; }

  /**
   * `signal` (the caller hung up) ends the wait for a connection, and this promise at once; the
   * request itself is left to finish and its answer dropped. Cancelling it would gain nothing
   * (Twin has the warm-up already) and cost much under load: undici closes a keep-alive socket
   * whose answer is due, so the next request pays a new connection, and every cancel builds
   * errors with stacks (seen on real Asterisk at 120 calls/s with 0.3-1.5 s warm-ups: callers
   * giving up were what kept the process busy).
   */
  async postJson(url: string, body: unknown, options: PostOptions): Promise<JsonResponse> {
    const release = await this.acquire(options.signal);
    const answered = this.send(new URL(url), body, options).finally(release);
    return options.signal ? untilAborted(answered, options.signal) : answered;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }

  private async acquire(signal?: AbortSignal): Promise<() => void> {
    try {
      return await this.slots.acquire(signal);
    } catch (err) {
      if (err instanceof SlotsFullError) throw new TwinHttpError('BUSY', err.message);
      throw ABORTED;
    }
  }

  /** The timeout runs from here, once a connection is ours: waiting for one is not Twin's time. */
  private async send(target: URL, body: unknown, options: PostOptions): Promise<JsonResponse> {
    const deadline = new Deadline(options.timeoutMs);
    const signal = deadline.signal;
    try {
      const res = await this.pool(target.origin).request({
        method: 'POST',
        path: target.pathname + target.search,
        headers: { 'content-type': 'application/json', accept: 'application/json', ...options.headers },
        body: JSON.stringify(body),
        signal,
      });
      const text = await res.body.text();
      return { status: res.statusCode, text };
    } catch (err) {
      if (deadline.signal.aborted && deadline.lateMs >= STALL_MS) {
        throw new TwinHttpError('STALLED', `no answer within ${options.timeoutMs} ms, but this process was stalled for ${Math.round(deadline.lateMs)} ms at the deadline`);
      }
      if (deadline.signal.aborted) throw new TwinHttpError('TIMEOUT', `no answer within ${options.timeoutMs} ms`);
      throw new TwinHttpError('NETWORK', `${target.origin}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    } finally {
      deadline.clear();
    }
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: this.limits.maxConnections, keepAliveTimeout: 30_000, pipelining: 1 });
      this.pools.set(origin, pool);
    }
    return pool;
  }
}

const ABORTED = new TwinHttpError('ABORTED', 'request aborted');
/** The deadline's abort reason: one error for all (the default builds a DOMException, with its stack, each time). */
const DEADLINE_PASSED = new Error('deadline passed');

/** `answered`, or an ABORTED rejection as soon as `signal` aborts (the request goes on; its answer is dropped). */
function untilAborted<T>(answered: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    answered.catch(() => { /* nobody waits for it any more */ });
    return Promise.reject(ABORTED);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    answered.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * A request's deadline. It aborts one turn of the event loop late (setImmediate runs after the
 * poll phase): after a stall, timers run before sockets are read, and an answer that arrived in
 * time must win over a timer that is only late. `lateMs` tells how late the timer itself fired.
 */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  lateMs = 0;

  constructor(timeoutMs: number) {
    const due = performance.now() + timeoutMs;
    this.timer = setTimeout(() => {
      this.lateMs = performance.now() - due;
      setImmediate(() => this.controller.abort(DEADLINE_PASSED));
    }, timeoutMs);
  }

  get signal(): AbortSignal { return this.controller.signal; }

  clear(): void { clearTimeout(this.timer); }
}
