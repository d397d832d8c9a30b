/**
 * Twin's callbacks survive a crash: the real daemon process takes callbacks while the customer is
 * down, is killed with SIGKILL before it could forward them, and the next run delivers each one
 * exactly once and still recognises Twin's repeats.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer } from './customer-server.js';
import { freePort, runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig } from './daemon-process.js';
import { waitFor } from './helpers.js';

const SECRET = 'restart-secret-0123456789';
const { twin, ari } = simulatorsForProcessTests();
const customer = new CustomerServer();

beforeAll(() => customer.start());
afterAll(() => customer.stop());

describe('callbacks across a crash', () => {
  it('loses nothing and doubles nothing when the process is killed between receipt and forwarding', async () => {
    const port = await freePort();
    const { path: configPath } = writeDaemonConfig({ twin, ari }, (config, dir) => {
      config.http = { listen_port: port };
      config.callbacks = { public_url: `http://127.0.0.1:${port}`, secret: SECRET, dir: join(dir, 'callbacks'), forward_to: [customer.url] };
    });
    const base = `http://127.0.0.1:${port}`;
    const post = async (body: unknown) => {
      const res = await fetch(`${base}/v1/twin/callbacks/${SECRET}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: res.status, ...(await res.json() as { id: string; result: string }) };
    };
    const events = Array.from({ length: 30 }, (_, i) => ({ type: i % 3 === 0 ? 'CALL_REDIRECTED' : 'CALL_ENDED', callId: `twin-${i}`, data: { callId: `pbx-${i}` } }));

    customer.status = 503; // the customer's system is down
    const first = runDaemonProcess(configPath);
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, 'the daemon to listen', 15_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${first.output()}`); });
    const answers = await Promise.all(events.map(post));
    expect(answers.every((a) => a.status === 200 && a.result === 'stored')).toBe(true);
    const repeats = await Promise.all(events.slice(0, 10).map(post)); // Twin did not see some 200s
    expect(repeats.map((a) => a.result)).toEqual(Array(10).fill('duplicate'));
    await waitFor(() => customer.attempts > 0, 'a forwarding attempt to fail');
    first.child.kill('SIGKILL');
    await first.exited;
    expect(customer.received).toEqual([]);

    customer.status = 200;
    const second = runDaemonProcess(configPath);
    try {
      await waitFor(() => customer.accepted().size === events.length, 'every callback to reach the customer', 20_000)
        .catch((err: Error) => { throw new Error(`${err.message}\n${second.output()}`); });
      const late = await Promise.all(events.slice(20).map(post)); // a repeat after delivery
      expect(late.map((a) => a.result)).toEqual(Array(10).fill('duplicate'));
      await new Promise((r) => setTimeout(r, 1500)); // time for a wrong second delivery to show
      expect([...customer.accepted().values()].every((n) => n === 1)).toBe(true);
      expect(customer.received.map((r) => r.body).sort(byCallId)).toEqual([...events].sort(byCallId));
      expect(second.output()).toContain('forwarding Twin callbacks left by the previous run');
    } finally {
      second.child.kill('SIGTERM');
    }
    expect(await second.exited).toBe(0);
  }, 60_000);
});

function byCallId(a: { callId?: unknown }, b: { callId?: unknown }): number {
  return String(a.callId).localeCompare(String(b.callId));
}
