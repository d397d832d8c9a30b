/**
 * A Twin that takes its time, and a product that cannot keep up (issue 20 item 3, issue 22 item 5):
 * warm-ups in flight follow the load, a caller who cannot get a connection in time goes to the
 * fallback at once, and a stall of our own is never charged to Twin.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { captureLog, labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('asterisk');

/** A promise the test settles by hand: Twin answers the held warm-ups when it is let go. */
function gate(): { until: Promise<void>; open: () => void } {
  let open = () => {};
  const until = new Promise<void>((resolve) => { open = resolve; });
  return { until, open };
}

describe('a slow Twin', () => {
  it('holds more warm-ups in flight than the old fixed 32 connections by default (100 calls/s × 2 s needs 200)', async () => {
    const lab = await startLab({ config: { trunk: { max_concurrent_calls: 500 } } });
    const held = gate();
    lab.twin.script(() => ({ kind: 'held', until: held.until }));
    const calls = Array.from({ length: 60 }, () => lab.ari.placeCall());
    await waitFor(() => lab.twin.inFlight === 60 || undefined, 'every warm-up at Twin at once');
    held.open();
    for (const call of calls) await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'connected');
    for (const call of calls) call.hangup();
    for (const call of calls) expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
  });

  it('sends a caller who finds every connection busy for connection_wait_ms to the fallback (BUSY) at once, trunk open, the wait shown', async () => {
    const lab = await startLab({ config: { twin: { max_connections: 2, connection_wait_ms: 100 }, http: { listen_port: 0 } } });
    const held = gate();
    lab.twin.script(() => ({ kind: 'held', until: held.until }));
    const first = [lab.ari.placeCall(), lab.ari.placeCall()];
    await waitFor(() => lab.twin.inFlight === 2 || undefined, 'two warm-ups at Twin');
    const third = lab.ari.placeCall();
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/metrics`)).text();
      return /^twin_connector_twin_requests_waiting 1$/m.test(text) ? text : undefined;
    }, 'the waiting warm-up in the metrics');
    expect(metrics).toMatch(/^twin_connector_twin_requests_in_flight 2$/m);
    // The event-loop delay, to tell a stall of ours from Twin's silence (issue 22, item 5).
    expect(metrics).toMatch(/^twin_connector_nodejs_eventloop_lag_p99_seconds \d/m);
    expect(await third.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'BUSY' } });
    expect(await lab.outcomeOf(third.id)).toMatchObject({ status: 'BUSY', detail: 'no free connection to Twin within 100 ms' });
    expect(lab.twin.warmups).toHaveLength(2); // the third never reached Twin
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    held.open();
    for (const call of first) await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'connected');
    for (const call of first) call.hangup();
  });
});

describe('a stall of our own (issue 22, item 5)', () => {
  it('reads an answer that arrived while the process was stalled past the deadline: connected, trunk open', async () => {
    const lab = await startLab({ config: { twin: { warmup_timeout_ms: 300 } } });
    lab.twin.script(() => ({ kind: 'stall', ms: 800 })); // answers at once, but nothing runs for 800 ms first
    const call = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'connected');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('does not throttle when the deadline passed during a stall of ours: fallback (BUSY), one plain log line, trunk open', async () => {
    const log = captureLog();
    const lab = await startLab({ config: { twin: { warmup_timeout_ms: 300 }, log: { level: 'warn' } }, log: createLogger({ level: 'warn', destination: log.stream }) });
    const held = gate();
    lab.twin.script(() => ({ kind: 'stall', ms: 800, then: { kind: 'held', until: held.until } }));
    const call = lab.ari.placeCall();
    expect(await call.left).toMatchObject({ vars: { TWIN_STATUS: 'BUSY' } });
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome.status).toBe('BUSY');
    expect(outcome.detail).toMatch(/^no answer within 300 ms, but this process was stalled for \d+ ms at the deadline$/);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    const lines = log.lines().filter((l) => l.callId === call.id);
    expect(lines.map((l) => l.msg)).toEqual(['warm-up not done in time on our side; caller sent to the fallback, trunk left open']);
    held.open();
  });

  it('still throttles when Twin itself is silent past the deadline', async () => {
    const lab = await startLab({ config: { twin: { warmup_timeout_ms: 200 } } });
    const held = gate();
    lab.twin.script(() => ({ kind: 'held', until: held.until }));
    const call = lab.ari.placeCall();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'UNAVAILABLE', detail: 'no answer within 200 ms' });
    expect(lab.daemon.gate.snapshot().state).toBe('throttled');
    held.open();
  });
});
