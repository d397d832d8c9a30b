/**
 * Time source for everything that decides by age: trunk cool-downs, call pacing, session age,
 * token expiry. Tests inject a ManualClock and move time forward instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` of this clock's time (at once if `signal` aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  }),
};

export class ManualClock implements Clock {
  private readonly sleepers: { until: number; wake: () => void }[] = [];

  constructor(private current = Date.UTC(2026, 10, 21, 12, 0, 0)) {}

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const onAbort = () => {
        this.sleepers.splice(this.sleepers.indexOf(sleeper), 1);
        resolve();
      };
      // Woken by advance(): the listener goes too, or a signal reused across sleeps collects them.
      const sleeper = { until: this.current + ms, wake: () => { signal?.removeEventListener('abort', onAbort); resolve(); } };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Moves time on and wakes every sleeper whose time has come. */
  advance(ms: number): void {
    this.current += ms;
    for (const sleeper of [...this.sleepers]) {
      if (sleeper.until > this.current) continue;
      this.sleepers.splice(this.sleepers.indexOf(sleeper), 1);
      sleeper.wake();
    }
  }

  /** How many are waiting on this clock: lets a test advance only once the code under test is waiting. */
  get sleeping(): number {
    return this.sleepers.length;
  }

  /** Whether someone sleeps until exactly `at`: a test can wait for one sleeper among several. */
  hasSleeperUntil(at: number): boolean {
    return this.sleepers.some((s) => s.until === at);
  }
}
