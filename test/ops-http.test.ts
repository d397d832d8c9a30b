/** Health, readiness, trunk state and metrics on the daemon's HTTP port, through real HTTP. */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { Lab, LabOptions } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import { labPerTest, waitFor } from './helpers.js';

async function get(lab: Lab, path: string): Promise<{ status: number; text: string; json: () => any }> {
  const res = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}${path}`);
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

/** The value of one sample in Prometheus text, e.g. sample(text, 'x_total{a="b"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe.each<PbxKind>(['asterisk', 'freeswitch'])('operations endpoints on %s', (kind) => {
  const startLab = labPerTest(kind);
  const start = (options: LabOptions = {}) => startLab({ ...options, config: { http: { listen_port: 0 }, ...options.config } });

  it('is live and ready when the PBX is connected and Twin answers; counts calls by outcome', async () => {
    const lab = await start();
    expect((await get(lab, '/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await get(lab, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toEqual({ ready: true, problems: [] });

    let warmups = 0;
    lab.twin.script(() => ({ kind: ++warmups === 2 ? 'null' : 'id' }));
    const connected = lab.pbx().placeCall();
    await waitFor(() => lab.pbx().channelVar(connected.id, 'TWIN_STATUS'), 'the first call to be bridged');
    const midCall = await get(lab, '/metrics');
    expect(sample(midCall.text, 'twin_connector_active_calls')).toBe(1);
    connected.hangup();
    await lab.pbx().placeCall().left;
    await lab.outcomesReached(2);

    const metrics = await get(lab, '/metrics');
    expect(metrics.status).toBe(200);
    expect(sample(metrics.text, `twin_connector_calls_total{pbx="${kind}",direction="inbound",outcome="connected"}`)).toBe(1);
    expect(sample(metrics.text, `twin_connector_calls_total{pbx="${kind}",direction="inbound",outcome="rejected"}`)).toBe(1);
    expect(sample(metrics.text, `twin_connector_warmup_seconds_count{pbx="${kind}",direction="inbound"}`)).toBe(2);
    expect(sample(metrics.text, `twin_connector_setup_seconds_count{pbx="${kind}",direction="inbound"}`)).toBe(1);
    expect(sample(metrics.text, 'twin_connector_active_calls')).toBe(0);
    expect(sample(metrics.text, 'twin_connector_trunk_state{state="open"}')).toBe(1);
    expect(sample(metrics.text, `twin_connector_pbx_connected{pbx="${kind}"}`)).toBe(1);
    expect(sample(metrics.text, 'twin_connector_iam_logins_total{result="ok"}')).toBe(1);
    expect(sample(metrics.text, 'twin_connector_warmup_requests_total')).toBe(2);
    expect(metrics.text).toContain('twin_connector_process_resident_memory_bytes');
  });

  it('shows a throttled trunk in /v1/trunk, /readyz and the metrics, and open again after the cool-down', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await start({ clock, config: { trunk: { cooldown_s: 120, max_concurrent_calls: 7, max_calls_per_second: 3 } } });
    lab.twin.script(() => ({ kind: 'status', status: 503 }));
    await lab.pbx().placeCall().left;

    const trunk = (await get(lab, '/v1/trunk')).json();
    expect(trunk).toEqual({
      state: 'throttled', since: new Date(clock.now()).toISOString(), cooldownUntil: new Date(clock.now() + 120_000).toISOString(),
      probeInFlight: false, activeCalls: 0, capacity: { maxConcurrentCalls: 7, maxCallsPerSecond: 3, atCapacity: false },
      lastFailure: 'Twin answered HTTP 503',
    });
    const ready = await get(lab, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json().problems).toEqual([`Twin trunk throttled until ${trunk.cooldownUntil} (Twin answered HTTP 503)`]);
    const metrics = (await get(lab, '/metrics')).text;
    expect(sample(metrics, 'twin_connector_trunk_state{state="throttled"}')).toBe(1);
    expect(sample(metrics, 'twin_connector_trunk_state{state="open"}')).toBe(0);

    // The cool-down ends by the clock, with no call arriving: /readyz no longer says "throttled
    // until <a time already past>", and the metric and /v1/trunk show the trunk waiting for its probe.
    clock.advance(120_000);
    await waitFor(() => lab.daemon.gate.snapshot().state === 'probing', 'the trunk to probe');
    expect((await get(lab, '/v1/trunk')).json()).toMatchObject({ state: 'probing', since: new Date(clock.now()).toISOString(), probeInFlight: false });
    expect((await get(lab, '/readyz')).status).toBe(200);
    const probingMetrics = (await get(lab, '/metrics')).text;
    expect(sample(probingMetrics, 'twin_connector_trunk_state{state="probing"}')).toBe(1);
    expect(sample(probingMetrics, 'twin_connector_trunk_state{state="throttled"}')).toBe(0);
    await waitFor(() => lab.pbx().trunkState() !== 'UNAVAILABLE' || undefined, 'the dialplan to let the probe through');
    lab.twin.script(() => ({ kind: 'id' }));
    const probe = lab.pbx().placeCall();
    await waitFor(() => lab.pbx().channelVar(probe.id, 'TWIN_STATUS'), 'the probe call to be bridged');
    probe.hangup();
    expect((await get(lab, '/v1/trunk')).json()).toMatchObject({ state: 'open', cooldownUntil: null });
    expect((await get(lab, '/readyz')).status).toBe(200);
  });

  it('is not ready while the PBX connection is down, and ready again once it is back', async () => {
    const lab = await start();
    if (kind === 'asterisk') {
      lab.ari.booting = true; // Asterisk answers 503 while it boots: the reconnect waits
      lab.ari.dropWebSockets();
    } else {
      lab.fs.restarting = true;
      lab.fs.dropInbound();
    }
    const down = await waitFor(async () => {
      const r = await get(lab, '/readyz');
      return r.status === 503 ? r : undefined;
    }, 'readyz to answer 503');
    expect(down.json().problems[0]).toMatch(new RegExp(`^${kind}: (reconnecting|connecting)`));
    expect(sample((await get(lab, '/metrics')).text, `twin_connector_pbx_connected{pbx="${kind}"}`)).toBe(0);
    if (kind === 'asterisk') lab.ari.booting = false;
    else lab.fs.restarting = false;
    await waitFor(async () => ((await get(lab, '/readyz')).status === 200 ? true : undefined), 'readyz to answer 200 again');
  });

  it('answers unknown paths and wrong methods with a JSON error', async () => {
    const lab = await start();
    const missing = await get(lab, '/nothing');
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ error: 'not found' });
    const res = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/metrics`, { method: 'DELETE' });
    expect(res.status).toBe(405);
  });
});
