import { expect } from 'vitest';
import type { Lab } from '../src/sim/lab.js';

/** Polls until `check` returns a value other than undefined/false (real events take a few ms). */
export async function waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Nothing of ours may be left in Asterisk once every call has left the product. */
export async function expectNoLeftovers(lab: Lab): Promise<void> {
  await waitFor(() => lab.daemon.activeCalls === 0, 'every call to leave the product');
  expect(lab.ari.leftovers()).toEqual({ channels: [], bridges: [] });
}
