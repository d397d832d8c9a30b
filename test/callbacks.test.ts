/**
 * Twin's callbacks through the daemon's HTTP port: named in the warm-up, stored on disk before the
 * 200, de-duplicated, forwarded to the customer with retries on the injected clock.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callbackKey } from '../src/callbacks/store.js';
import { ManualClock } from '../src/clock.js';
import { createLogger, type Logger } from '../src/log.js';
import type { Lab } from '../src/sim/lab.js';
import { CustomerServer } from './customer-server.js';
import { captureLog, labPerTest, waitFor } from './helpers.js';

const SECRET = 'cb-secret-0123456789abcdef';

describe('Twin callbacks', () => {
  const startLab = labPerTest('asterisk');
  let customer: CustomerServer;
  let other: CustomerServer;
  let dir: string;
  beforeEach(async () => {
    customer = new CustomerServer();
    other = new CustomerServer();
    await Promise.all([customer.start(), other.start()]);
    dir = mkdtempSync(join(tmpdir(), 'twin-callbacks-'));
  });
  afterEach(async () => {
    await Promise.all([customer.stop(), other.stop()]);
  });

  async function start(clock?: ManualClock, extra: Record<string, unknown> = {}, log?: Logger): Promise<Lab> {
    return startLab({
      clock, log,
      config: {
        http: { listen_port: 0 },
        callbacks: { public_url: 'https://connector.example.com:8443', secret: SECRET, dir, forward_to: [customer.url, other.url], ...extra },
      },
    });
  }

  function post(lab: Lab, body: string, secret = SECRET): Promise<Response> {
    return fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/v1/twin/callbacks/${secret}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body,
    });
  }

  const files = (folder: string) => readdirSync(join(dir, folder)).filter((n) => n.endsWith('.json') || n.endsWith('.txt'));

  it('names its own callback URL in the warm-up, ahead of the ones Twin should call directly', async () => {
    const lab = await startLab({
      config: {
        http: { listen_port: 0 },
        twin: { callback_urls: ['https://crm.example.com/direct'] },
        callbacks: { public_url: 'https://connector.example.com:8443', secret: SECRET, dir, forward_to: [customer.url] },
      },
    });
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS'), 'the call to be bridged');
    call.hangup();
    const sent = JSON.parse(lab.twin.warmups[0]!.raw) as { calls: { callback: { url: string; data: unknown }[] }[] };
    expect(sent.calls[0]!.callback).toEqual([
      { url: `https://connector.example.com:8443/v1/twin/callbacks/${SECRET}`, data: { callId: call.id } },
      { url: 'https://crm.example.com/direct', data: { callId: call.id } },
    ]);
  });

  it('stores a callback before the 200, forwards it once to each URL, and answers a repeat as a duplicate', async () => {
    const lab = await start();
    const event = { type: 'CALL_ENDED', callId: 'twin-1', data: { callId: 'pbx-1' }, result: { success: true } };
    const first = await post(lab, JSON.stringify(event));
    expect(first.status).toBe(200);
    const { id, result } = await first.json() as { id: string; result: string };
    expect(result).toBe('stored');
    // On disk once answered: still pending, or already delivered.
    expect(existsSync(join(dir, 'pending', `${id}.json`)) || existsSync(join(dir, 'delivered', `${id}.json`))).toBe(true);

    // Twin retries (it did not see our 200): same content, keys in another order.
    const again = await post(lab, JSON.stringify({ result: { success: true }, data: { callId: 'pbx-1' }, callId: 'twin-1', type: 'CALL_ENDED' }));
    expect(await again.json()).toEqual({ id, result: 'duplicate' });

    // finish() writes delivered/ durably first, then removes pending/: wait for both steps.
    await waitFor(() => (files('delivered').length === 1 && files('pending').length === 0) || undefined, 'the callback to be delivered everywhere');
    expect(customer.received).toEqual([{ id, body: event }]);
    expect(other.received).toEqual([{ id, body: event }]);
    expect(files('pending')).toEqual([]);

    // Unknown event types are kept and forwarded too.
    const unknown = await post(lab, JSON.stringify({ type: 'SOMETHING_NEW', callId: 'twin-1' }));
    expect((await unknown.json() as { result: string }).result).toBe('stored');
    await waitFor(() => files('delivered').length === 2, 'the unknown event to be delivered');
    expect(customer.received.map((r) => r.body.type)).toEqual(['CALL_ENDED', 'SOMETHING_NEW']);
    const metrics = await (await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/metrics`)).text();
    expect(metrics).toContain('twin_connector_callbacks_total{result="stored"} 2');
    expect(metrics).toContain('twin_connector_callbacks_total{result="duplicate"} 1');
    expect(metrics).toContain('twin_connector_callbacks_total{result="forwarded"} 4');
  });

  it('retries a failing customer after 1, 2, 4 s of the clock until it answers 2xx', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await start(clock, { forward_to: [customer.url] });
    customer.status = 500;
    expect((await post(lab, JSON.stringify({ type: 'CALL_ENDED', callId: 'twin-2' }))).status).toBe(200);
    for (const [attempt, delayMs] of [[1, 1000], [2, 2000], [3, 4000]] as const) {
      await waitFor(() => customer.attempts === attempt && clock.sleeping > 0, `attempt ${attempt} to fail`);
      clock.advance(delayMs - 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(customer.attempts).toBe(attempt); // not before its time
      if (attempt === 3) customer.status = 204;
      clock.advance(1);
    }
    await waitFor(() => files('delivered').length === 1, 'delivery on the fourth attempt');
    expect(customer.attempts).toBe(4);
    expect(customer.received).toHaveLength(1);
  });

  it('gives up after callbacks.retry_for_h and keeps the callback in failed/', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await start(clock, { forward_to: [customer.url], retry_for_h: 1 });
    customer.status = 503;
    const receivedAt = clock.now();
    await post(lab, JSON.stringify({ type: 'CALL_ENDED', callId: 'twin-3' }));
    // Each failed attempt is saved with its next time; the clock moves there only once the
    // forwarder sleeps until exactly then (other parts of the daemon sleep on this clock too).
    const attemptTimes: number[] = [];
    for (let attempt = 1; ; attempt += 1) {
      await waitFor(() => customer.attempts === attempt, `attempt ${attempt}`);
      attemptTimes.push((clock.now() - receivedAt) / 1000);
      const next = await waitFor(() => (files('failed').length === 1 ? 'gave up' : nextTry(attempt)), `attempt ${attempt} to be saved`);
      if (next === 'gave up') break;
      await waitFor(() => clock.hasSleeperUntil(next), `the forwarder to wait for attempt ${attempt + 1}`);
      clock.advance(next - clock.now());
    }
    // Written to failed/ first, then removed from pending/ (a crash in between keeps it, never loses it).
    await waitFor(() => files('pending').length === 0, 'the callback gone from pending/');
    expect(customer.received).toEqual([]);
    // 1, 2, 4 … 256 s apart, then every 5 minutes; the attempt that finds the hour over is the last.
    expect(attemptTimes).toEqual([0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 811, 1111, 1411, 1711, 2011, 2311, 2611, 2911, 3211, 3511, 3811]);
    expect(customer.attempts).toBe(21);
  });

  /** The pending callback's next attempt time, once its `attempt`-th attempt is saved. */
  function nextTry(attempt: number): number | undefined {
    const [name] = files('pending');
    if (!name) return undefined;
    try {
      const saved = JSON.parse(readFileSync(join(dir, 'pending', name), 'utf8')) as { deliveries: Record<string, { attempts: number; nextAt: number }> };
      const delivery = saved.deliveries[customer.url];
      return delivery?.attempts === attempt ? delivery.nextAt : undefined;
    } catch {
      return undefined; // being written
    }
  }

  it('answers 400 to a body that is not a JSON object and keeps it; 404 to a wrong secret; 413 when too large', async () => {
    const lab = await start();
    const bad = await post(lab, '{"type": "CALL_ENDED", ');
    expect(bad.status).toBe(400);
    const { kept } = await bad.json() as { kept: string };
    expect(files('malformed')).toEqual([kept]);
    expect((await post(lab, '[1,2]')).status).toBe(400);

    const wrong = await post(lab, JSON.stringify({ type: 'CALL_ENDED' }), 'not-the-secret-0123456789');
    expect(wrong.status).toBe(404);
    expect((await post(lab, JSON.stringify({ pad: 'x'.repeat(1024 * 1024) }))).status).toBe(413);
    expect(files('pending')).toEqual([]);
    expect(customer.attempts).toBe(0);
  });

  it('answers 400 to a body nested deeper than 64 levels and keeps it in malformed/, where a recursive walk would overflow', async () => {
    const lab = await start();
    const deep = `{"type":"CALL_ENDED","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`; // 200 KB
    const res = await post(lab, deep);
    expect(res.status).toBe(400);
    const { error, kept } = await res.json() as { error: string; kept: string };
    expect(error).toBe('body is nested deeper than 64 levels');
    expect(files('malformed')).toEqual([kept]);
    expect(files('pending')).toEqual([]);

    const deepest = `{"type":"CALL_ENDED","data":${'['.repeat(63)}${']'.repeat(63)}}`; // 64 levels with the object
    expect((await post(lab, deepest)).status).toBe(200);
  });

  it('removes the temporary file of a write that fails', async () => {
    const lab = await start();
    const event = { type: 'CALL_ENDED', callId: 'twin-unwritable' };
    mkdirSync(join(dir, 'pending', `${callbackKey(event)}.json`)); // the rename over it fails: EISDIR
    expect((await post(lab, JSON.stringify(event))).status).toBe(500);
    expect(readdirSync(join(dir, 'pending'))).toEqual([`${callbackKey(event)}.json`]);
  });

  it('removes temporary files a crash left behind when it starts', async () => {
    for (const folder of ['pending', 'delivered', 'malformed']) {
      mkdirSync(join(dir, folder));
      writeFileSync(join(dir, folder, '.0123abcd.json.1a2b3c4d.tmp'), '{"half":');
    }
    await start();
    for (const folder of ['pending', 'delivered', 'malformed']) expect(readdirSync(join(dir, folder))).toEqual([]);
  });

  it('logs only the origin of a forward URL, never its path or query', async () => {
    const log = captureLog();
    const forward = 'http://127.0.0.1:9/hooks/path-token-5e1f?key=query-token-7a2c';
    const lab = await start(undefined, { forward_to: [forward] }, createLogger({ level: 'trace', destination: log.stream }));
    expect((await post(lab, JSON.stringify({ type: 'CALL_ENDED', callId: 'twin-4' }))).status).toBe(200);
    await waitFor(() => log.lines().find((l) => l.msg === 'forwarding a Twin callback failed; will retry'), 'the failed attempt to be logged')
      .then((line) => expect(line.forwardTo).toBe('http://127.0.0.1:9'));
    expect(log.text()).not.toMatch(/path-token|query-token|\/hooks/);
  });
});
