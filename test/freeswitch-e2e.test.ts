/** FreeSWITCH-only behaviour (ESL); the cases shared with Asterisk are in e2e-matrix.test.ts. */
import { describe, expect, it } from 'vitest';
import { parseCallRequest } from '../src/outbound/request.js';
import { Lab } from '../src/sim/lab.js';
import { labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('freeswitch');

const connected = (lab: Lab, id: string) => lab.fs.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED';

describe('FreeSWITCH (ESL) specifics', () => {
  it('sets continue_on_fail before the bridge, dials with originate_timeout, and needs 8 ESL commands per call', async () => {
    const lab = await startLab();
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    expect(lab.fs.channel(call.id)!.vars.get('continue_on_fail')).toBe('true');
    expect(lines).toEqual([
      'connect', 'myevents json', 'linger', 'sendmsg', 'sendmsg', `api uuid_break ${call.id} all`, 'sendmsg',
      `api uuid_setvar ${call.id} TWIN_STATUS CONNECTED`,
    ]);
    expect(lab.fs.channel(call.id)!.vars.get('current_application')).toBe('bridge');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    // With `linger`, FreeSWITCH never closes the socket: the product must (the leak check verifies it).
  });

  it('explains a wrong ESL password, keeps retrying, and still takes calls on the call socket', async () => {
    const lab = await startLab({ config: { freeswitch: { esl_password: 'not-the-password' } } });
    expect(lab.daemon.freeswitch!.lastProblem).toBe(`FreeSWITCH ESL at 127.0.0.1:${lab.fs.port} refused the password (see event_socket.conf.xml)`);
    expect(lab.daemon.freeswitch!.state).toBe('reconnecting');
    expect(lab.fs.globals.has('twin_trunk')).toBe(false);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected without the inbound connection');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('reconnects the inbound ESL connection after it is cut and publishes the trunk state again', async () => {
    const lab = await startLab();
    await waitFor(() => lab.fs.globals.get('twin_trunk') === 'NOT_INUSE', 'trunk published');
    lab.fs.globals.clear(); // as after a FreeSWITCH restart
    lab.fs.dropInbound();
    await waitFor(() => lab.fs.globals.get('twin_trunk') === 'NOT_INUSE', 'trunk published again', 3000);
    expect(lab.daemon.freeswitch!.state).toBe('connected');
  });

  it('when the call socket drops during the warm-up, FreeSWITCH hangs up and the product lets the call go', async () => {
    const lab = await startLab();
    lab.twin.script(() => ({ kind: 'slow', delayMs: 200 }));
    const call = lab.fs.placeCall();
    await waitFor(() => lab.twin.warmups.length === 1, 'the warm-up');
    lab.fs.dropOutboundSockets();
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', reason: 'socket closed' });
    expect((await lab.outcomeOf(call.id)).status).toBe('ABANDONED');
    expect(lab.fs.invites).toHaveLength(0);
  });

  it('when the call socket drops while bridged, the call goes on in FreeSWITCH and the product releases it', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    lab.fs.dropOutboundSockets();
    expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
    expect(lab.daemon.activeCalls).toBe(0);
    expect(lab.fs.leftovers()).toHaveLength(1); // the bridge outlives the socket (fixture e1)
    call.hangup();
    await call.left;
  });

  it('survives a raw "%" in the linger notice (modesl would throw decoding it)', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall({ number: '+1555%zz' });
    await waitFor(() => connected(lab, call.id), 'connected');
    call.hangup();
    expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
    const next = lab.fs.placeCall({ number: '+1555%zz' }); // odd calls get the notice before the last events
    await waitFor(() => connected(lab, next.id), 'second call connected');
    next.hangup();
    expect((await lab.outcomeOf(next.id)).status).toBe('CONNECTED');
  });

  it('fails fast with a clear message when the call socket port is taken', async () => {
    const first = await startLab();
    const port = first.daemon.freeswitch!.listenPort;
    await expect(Lab.start({ pbx: 'freeswitch', config: { freeswitch: { listen_port: port } } }))
      .rejects.toThrow(`cannot listen for FreeSWITCH on 127.0.0.1:${port}: address already in use`);
  });

  it('tells FreeSWITCH where to connect an originated call: originate_socket_host, or loopback for a 0.0.0.0 listener', async () => {
    for (const [extra, host] of [[{}, '127.0.0.1'], [{ originate_socket_host: '127.0.0.2' }, '127.0.0.2']] as const) {
      const lab = await Lab.start({ pbx: 'freeswitch', config: { freeswitch: { listen_host: '0.0.0.0', ...extra }, outbound: { caller_id: '+12025550143' } } });
      try {
        lab.fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
        const { result } = lab.daemon.placeCall(parseCallRequest({ to: '+442079460018', bot: 'sales' }, lab.config));
        expect((await result).status).toBe('connected'); // 127.0.0.2 is loopback too: the call still arrives
        expect(lab.fs.dials.at(-1)!.socketTarget).toBe(`${host}:${lab.daemon.freeswitch!.listenPort}`);
      } finally {
        await lab.stop();
      }
    }
  });
});
