/**
 * A PBX without the bot endpoint (issue 22, item 6): Asterisk without the PJSIP endpoint of
 * asterisk.bot_endpoint, FreeSWITCH without the sofia gateway of freeswitch.bot_endpoint. The product
 * says so at start and at each reconnection, sends callers straight to the route's fallback
 * (UNAVAILABLE) without opening a Twin session and without throttling the trunk, and takes calls
 * again once the PBX has the endpoint (checked every minute on the daemon's clock).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createLogger } from '../src/log.js';
import { parseCallRequest } from '../src/outbound/request.js';
import type { Lab } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';
import { captureLog, labPerTest, waitFor } from './helpers.js';

const FALLBACK = { routes: { default: { bot: 'b', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' } } } };

/** Per PBX: the lab options that leave the endpoint out, the log line's words, and how to add it back or cut the connection. */
const PBX = {
  asterisk: {
    without: { ari: { endpoints: ['carrier'] } },
    missing: "Asterisk has no PJSIP endpoint 'twin' (asterisk.bot_endpoint PJSIP/twin/{uri})",
    addEndpoint: (lab: Lab) => lab.ari.pjsipEndpoints.add('twin'),
    reconnect: (lab: Lab) => lab.ari.dropWebSockets(),
  },
  freeswitch: {
    without: { freeswitch: { gateways: {} } },
    missing: "FreeSWITCH has no sofia gateway 'twin' (freeswitch.bot_endpoint sofia/gateway/twin/{user})",
    addEndpoint: (lab: Lab) => lab.fs.gateways.set('twin', '127.0.0.1:5070'),
    reconnect: (lab: Lab) => lab.fs.dropInbound(),
  },
} as const;

describe.each<PbxKind>(['asterisk', 'freeswitch'])('%s without the bot endpoint', (kind) => {
  const startLab = labPerTest(kind);
  const pbx = PBX[kind];
  const driver = (lab: Lab) => (kind === 'asterisk' ? lab.daemon.asterisk! : lab.daemon.freeswitch!);

  async function start(clock = new ManualClock(Date.now())) {
    const log = captureLog();
    const lab = await startLab({ clock, log: createLogger({ destination: log.stream }), config: FALLBACK, ...pbx.without });
    const missingLines = () => log.lines().filter((l) => l.level === 50 && String(l.msg).startsWith(pbx.missing)).length;
    return { lab, clock, log, missingLines };
  }

  it('says so at start, and sends callers to the route fallback (UNAVAILABLE) with no warm-up and no throttle', async () => {
    const { lab, missingLines } = await start();
    expect(missingLines()).toBe(1);
    expect(await lab.daemon.readiness()).toContainEqual({ reason: `bot_endpoint_missing:${kind}`, detail: `bot endpoint missing: ${pbx.missing}` });

    const call = lab.pbx().placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'twin-fallback', extension: 'agent', vars: { TWIN_STATUS: 'UNAVAILABLE' } });
    const outcome = await lab.outcomeOf(call.id);
    expect(outcome).toMatchObject({ status: 'UNAVAILABLE', detail: `bot endpoint missing: ${pbx.missing}` });
    expect(outcome.warmupMs).toBeUndefined();
    expect(lab.twin.warmups).toHaveLength(0); // no Twin session opened
    expect(lab.pbx().invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().state).toBe('open'); // not Twin's fault: no throttle
  });

  it('refuses an outbound call before its warm-up', async () => {
    const { lab } = await start();
    const { result } = lab.daemon.placeCall(parseCallRequest({ to: '+442079460018', from: '+12025550143', bot: 'b', pbx: kind }, lab.config));
    expect(await result).toMatchObject({ status: 'unavailable', detail: `bot endpoint missing: ${pbx.missing}` });
    expect(lab.twin.warmups).toHaveLength(0);
    expect(lab.pbx().dials).toHaveLength(0);
  });

  it('says so again at a reconnection, and takes calls once the PBX has the endpoint, at the next minute\'s check', async () => {
    const { lab, clock, log, missingLines } = await start();
    pbx.reconnect(lab);
    await waitFor(() => missingLines() === 2, 'the missing endpoint logged again after the reconnection');

    pbx.addEndpoint(lab);
    expect(driver(lab).botEndpointMissing).toBeDefined(); // not asked again yet
    clock.advance(60_000);
    await waitFor(() => driver(lab).botEndpointMissing === undefined, 'the minute\'s check to find the endpoint');
    expect(log.text()).toContain('exists now: calls go to the bot again');
    expect(await lab.daemon.readiness()).not.toContainEqual(expect.objectContaining({ reason: `bot_endpoint_missing:${kind}` }));

    const call = lab.pbx().placeCall();
    await waitFor(() => lab.pbx().channelVar(call.id, 'TWIN_STATUS') === 'CONNECTED', 'the caller connected to the bot');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
    expect(lab.twin.warmups).toHaveLength(1);
    expect(missingLines()).toBe(2);
  });

  it('finds the endpoint at a reconnection too, without waiting for the minute', async () => {
    const { lab } = await start();
    const refused = lab.pbx().placeCall();
    expect(await lab.outcomeOf(refused.id)).toMatchObject({ status: 'UNAVAILABLE' });
    pbx.addEndpoint(lab);
    pbx.reconnect(lab);
    await waitFor(() => driver(lab).botEndpointMissing === undefined, 'the reconnection\'s check to find the endpoint');
    const call = lab.pbx().placeCall();
    await waitFor(() => lab.pbx().channelVar(call.id, 'TWIN_STATUS') === 'CONNECTED', 'the caller connected to the bot');
    call.hangup();
    await lab.outcomeOf(call.id);
  });
});
