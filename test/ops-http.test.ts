/**
 * Health, readiness, trunk state and metrics on the daemon's HTTP port, through real HTTP; and the
 * port's defences against strangers (idle and surplus connections, malformed URLs, login probes),
 * through real sockets on loopback.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createLogger } from '../src/log.js';
import type { Lab, LabOptions } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import { captureLog, labPerTest, openSocket, untilClosed, waitFor } from './helpers.js';

const API_TOKEN = 'ops-api-token-0123456789';

async function get(lab: Lab, path: string): Promise<{ status: number; text: string; json: () => any }> {
  const res = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}${path}`);
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

/** GET /v1/status with the dialer API's bearer token: readiness in detail. */
async function status(lab: Lab): Promise<{ ready: boolean; problems: { reason: string; detail: string }[] }> {
  const res = await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/v1/status`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  expect(res.status).toBe(200);
  return await res.json() as { ready: boolean; problems: { reason: string; detail: string }[] };
}

/** The value of one sample in Prometheus text, e.g. sample(text, 'x_total{a="b"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe.each<PbxKind>(['asterisk', 'freeswitch'])('operations endpoints on %s', (kind) => {
  const startLab = labPerTest(kind);
  const start = (options: LabOptions = {}) => startLab({ ...options, config: { http: { listen_port: 0, api_token: API_TOKEN }, ...options.config } });

  it('is live and ready when the PBX is connected and Twin answers; counts calls by outcome', async () => {
    const lab = await start();
    expect((await get(lab, '/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await get(lab, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toEqual({ ready: true, reasons: [] });
    expect(await status(lab)).toEqual({ ready: true, problems: [] });

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
    expect(ready.json()).toEqual({ ready: false, reasons: ['twin_trunk_throttled'] });
    expect((await status(lab)).problems).toEqual([
      { reason: 'twin_trunk_throttled', detail: `Twin trunk throttled until ${trunk.cooldownUntil} (Twin answered HTTP 503)` },
    ]);
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
    expect(down.json()).toEqual({ ready: false, reasons: [`pbx_down:${kind}`] });
    expect((await status(lab)).problems[0]!.detail).toMatch(new RegExp(`^${kind}: (reconnecting|connecting)`));
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

describe('the HTTP port facing strangers', () => {
  const startLab = labPerTest('asterisk');
  const start = (options: LabOptions = {}) => startLab({ ...options, config: { http: { listen_port: 0, api_token: API_TOKEN }, ...options.config } });

  it('closes a connection that sends nothing, one that stops mid-request, and an idle keep-alive one, after http.idle_timeout_ms', async () => {
    const lab = await start({ config: { http: { listen_port: 0, idle_timeout_ms: 100 } } });
    const port = lab.daemon.httpServer!.port;
    const [silent, partial, keepAlive] = await Promise.all([openSocket(port), openSocket(port), openSocket(port)]);
    const closed = [
      untilClosed(silent, 'the silent connection to be closed'),
      untilClosed(partial, 'the stalled connection to be closed'),
      untilClosed(keepAlive, 'the idle keep-alive connection to be closed'),
    ];
    partial.write('GET /heal');
    keepAlive.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const [fromSilent, fromPartial, fromKeepAlive] = await Promise.all(closed);
    expect([fromSilent, fromPartial]).toEqual(['', '']);
    expect(fromKeepAlive).toMatch(/^HTTP\/1.1 200 OK/); // served, then closed once idle
    await waitFor(() => lab.daemon.httpServer!.openConnections === 0, 'no connection to stay open');
  });

  it('answers 503 on a connection over http.max_connections, and serves again once connections close', async () => {
    const lab = await start({ config: { http: { listen_port: 0, max_connections: 3 } } });
    const port = lab.daemon.httpServer!.port;
    const held = await Promise.all([1, 2, 3].map(() => openSocket(port)));
    await waitFor(() => lab.daemon.httpServer!.openConnections === 3, 'the server to count three connections');

    const extra = await openSocket(port);
    const answer = untilClosed(extra, 'the connection over the cap to be answered and closed');
    extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1.1 503 Service Unavailable\r\n/);
    expect(text.endsWith('{"error":"too many connections"}')).toBe(true);
    expect(lab.daemon.httpServer!.openConnections).toBe(3);

    for (const socket of held) socket.destroy();
    await waitFor(() => lab.daemon.httpServer!.openConnections === 0, 'the closed connections to be forgotten');
    expect((await get(lab, '/healthz')).status).toBe(200);
    const metrics = (await get(lab, '/metrics')).text;
    expect(sample(metrics, 'twin_connector_http_connections_refused_total')).toBe(1);
  });

  it('logs in to Twin at most once per back-off however often /readyz is probed, and tells strangers only reason codes', async () => {
    const clock = new ManualClock(Date.now());
    const log = captureLog();
    const lab = await start({ clock, log: createLogger({ level: 'info', destination: log.stream }), config: { twin: { password: 'wrong-password-123' } } });
    const probe = async () => {
      const res = await get(lab, '/readyz');
      expect(res.status).toBe(503);
      expect(res.text).not.toMatch(/password|http:|127\.0\.0\.1|iam/i);
      return res.json();
    };
    for (let i = 0; i < 20; i++) expect(await probe()).toEqual({ ready: false, reasons: ['twin_login_failed'] });
    expect(lab.twin.logins).toBe(1);

    // The operator, with the API token, sees why; the log says it once, not once per probe.
    expect(await status(lab)).toEqual({
      ready: false, problems: [{ reason: 'twin_login_failed', detail: 'Twin IAM login failed: HTTP 401 (wrong email or password?)' }],
    });
    expect((await fetch(`http://127.0.0.1:${lab.daemon.httpServer!.port}/v1/status`)).status).toBe(401);
    expect(log.lines().filter((l) => String(l.msg).startsWith('not ready'))).toHaveLength(1);

    // The back-off: 30 s, then 60 s.
    clock.advance(29_999);
    await probe();
    expect(lab.twin.logins).toBe(1);
    clock.advance(1);
    await probe();
    expect(lab.twin.logins).toBe(2);
    clock.advance(59_999);
    await probe();
    expect(lab.twin.logins).toBe(2);
    clock.advance(1);
    await probe();
    expect(lab.twin.logins).toBe(3);
  });

  it('answers 400 to a malformed URL or a body cut off, with at most a debug line in the log', async () => {
    const log = captureLog();
    const lab = await start({ log: createLogger({ level: 'trace', destination: log.stream }) });
    const port = lab.daemon.httpServer!.port;
    const bearer = { authorization: `Bearer ${API_TOKEN}` };
    const before = log.lines().length;

    expect((await fetch(`http://127.0.0.1:${port}/v1/twin/callbacks/%E0%A4%A`, { method: 'POST', body: '{}' })).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${port}/v1/calls/%E0%A4%A`, { headers: bearer })).status).toBe(400);
    for (const target of ['//[bad', 'http://[::1']) {
      const socket = await openSocket(port);
      const answer = untilClosed(socket, `the answer to ${target}`);
      socket.end(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(await answer).toMatch(/^HTTP\/1.1 400 /);
    }
    // Expect: 100-continue makes the server say when it has the headers; then the client leaves mid-body.
    const cutOff = await openSocket(port);
    const continued = new Promise((resolve) => cutOff.once('data', resolve));
    cutOff.write(`POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_TOKEN}\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`);
    expect(String(await continued)).toMatch(/^HTTP\/1.1 100 Continue/);
    cutOff.write('{"to":');
    cutOff.destroy();
    await waitFor(() => log.lines().filter((l) => l.msg === 'bad HTTP request').length === 5, 'five debug lines');

    const lines = log.lines().slice(before);
    expect(lines.filter((l) => l.level > 20)).toEqual([]); // nothing above debug
    expect(log.text()).not.toMatch(/URIError|"stack"/);
  });
});
