/**
 * Requests in flight to Twin, bounded, with a bounded wait for a free one. A sync warm-up holds a
 * keep-alive connection for as long as Twin takes (0.3–2 s when the bot is slow to get ready), so
 * the pool needs rate × warm-up time connections; a caller who cannot get one within `maxWaitMs`
 * is told so at once (and goes to the fallback) instead of queueing until they give up.
 */
export class SlotsFullError extends Error {
  constructor(waitedMs: number) {
    super(`no free connection to Twin within ${waitedMs} ms`);
    this.name = 'SlotsFullError';
  }
}

interface Waiter {
  grant: () => void;
  refuse: (err: Error) => void;
}

export class RequestSlots {
  private inUse = 0;
  private readonly queue = new Set<Waiter>();

  constructor(private readonly max: number, private readonly maxWaitMs: number) {}

  get inFlight(): number { return this.inUse; }
  get waiting(): number { return this.queue.size; }

  /** Resolves with the function that gives the slot back; rejects with SlotsFullError, or the signal's reason. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.inUse < this.max && this.queue.size === 0) return Promise.resolve(this.take());
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const done = () => { clearTimeout(timer); signal?.removeEventListener('abort', onAbort); this.queue.delete(waiter); };
      const waiter: Waiter = {
        grant: () => { done(); resolve(this.take()); },
        refuse: (err) => { done(); reject(err); },
      };
      const onAbort = () => waiter.refuse(signal!.reason as Error);
      const timer = setTimeout(() => waiter.refuse(new SlotsFullError(this.maxWaitMs)), this.maxWaitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.add(waiter);
    });
  }

  private take(): () => void {
    this.inUse += 1;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.inUse -= 1;
      const next = this.queue.values().next();
      if (!next.done) next.value.grant();
    };
  }
}
