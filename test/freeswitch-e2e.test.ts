/** FreeSWITCH-only behaviour (ESL); the cases shared with Asterisk are in e2e-matrix.test.ts. */
import { describe, expect, it } from 'vitest';
import { parseCallRequest } from '../src/outbound/request.js';
import { Lab } from '../src/sim/lab.js';
import { labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('freeswitch');

const connected = (lab: Lab, id: string) => lab.fs.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED';

describe('FreeSWITCH (ESL) specifics', () => {
  it('sets continue_on_fail, a bound on the hold tone and the transfer guard at once, goes straight to the bridge after a quick warm-up, hands the bridged call to FreeSWITCH: 7 ESL commands per call', async () => {
    const lab = await startLab();
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    const boundS = Math.ceil(lab.config.twin.warmup_timeout_ms / 1000) + 1;
    expect(lines).toEqual([
      'connect', 'myevents json', expect.stringMatching(/^nixevent CHANNEL_ANSWER .*CHANNEL_STATE .*CHANNEL_UNPARK /), 'linger',
      // With the hold's own variables: the transfer guard (issue 14), so no command of its own before the bridge.
      `api uuid_setvar_multi ${call.id} continue_on_fail=true;playback_timeout_sec=${boundS};`
        + 'force_transfer_context=twin-transfers;twin_transfer_timeout=30;twin_fb_action=hangup;twin_fb_cause=NORMAL_CLEARING',
      'sendmsg',
      // Bridged: handed to FreeSWITCH with what to do if the bot hangs up first, and the socket closed.
      `api uuid_setvar_multi ${call.id} TWIN_STATUS=CONNECTED;twin_next_step=released;twin_after_bot=hangup;twin_after_cause=NORMAL_CLEARING`,
    ]);
    await waitFor(() => lab.fs.channel(call.id)?.session?.closed || undefined, 'the call socket closed while bridged');
    expect(lab.fs.channel(call.id)!.vars.get('continue_on_fail')).toBe('true');
    expect(lab.fs.channel(call.id)!.vars.get('current_application')).toBe('bridge');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    // With `linger`, FreeSWITCH never closes the socket: the product must (the leak check verifies it).
  });

  it('at the shutdown timeout, hangs up a handed-over call even when setting TWIN_STATUS gets no answer (issue 13, item 2)', async () => {
    const lab = await startLab({ config: { freeswitch: { command_timeout_ms: 300 } } });
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id) && lab.fs.channel(call.id)?.session?.closed, 'the bridged call handed to FreeSWITCH');
    lab.fs.delayInboundApi = (command) => (command.startsWith('uuid_setvar') ? 1000 : 0);
    await lab.daemon.stop(0); // the shutdown timeout: every call still live is hung up
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'ERROR' } });
  });

  it('plays the hold only when the warm-up takes longer than hold_delay_ms, and breaks it before the bridge', async () => {
    const lab = await startLab({ config: { freeswitch: { hold_delay_ms: 20 } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.playing === 'ring' || undefined, 'the ringback');
    await waitFor(() => connected(lab, call.id), 'connected');
    expect(lines.slice(5)).toEqual([
      'sendmsg', `api uuid_break ${call.id} all`, 'sendmsg',
      expect.stringMatching(/^api uuid_setvar_multi \S+ TWIN_STATUS=CONNECTED;/),
    ]);
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('gives the bot leg a cleaned caller id: no CR LF from the caller reaches the INVITE (second recording)', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall({ number: '+1555\r\nX-Evil: 1', name: 'Mallory\r\nX-Evil: 2' });
    await waitFor(() => connected(lab, call.id), 'connected');
    const raw = lab.fs.invites[0]!.raw;
    expect(raw.split('\r\n').filter((line) => line.startsWith('X-Evil'))).toEqual([]);
    expect(raw).toContain('Remote-Party-ID: "MalloryX-Evil 2" <sip:anonymous@127.0.0.1>');
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('connects a caller whose display name FreeSWITCH cannot put on a leg (\\"), instead of failing and throttling', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall({ name: 'Evil \\" Name' });
    await waitFor(() => connected(lab, call.id), 'connected');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED' });
    expect(lab.daemon.gate.snapshot().state).toBe('open');
  });

  it('never throttles the trunk for a bot leg FreeSWITCH could not build (no INVITE reached Twin)', async () => {
    const lab = await startLab();
    lab.fs.legCreationFails = true;
    const failed = lab.fs.placeCall();
    expect((await failed.left).vars.TWIN_STATUS).toBe('BOT_FAILED');
    expect(await lab.outcomeOf(failed.id)).toMatchObject({
      status: 'BOT_FAILED', detail: 'bot leg unavailable (DESTINATION_OUT_OF_ORDER, no SIP answer from Twin)',
    });
    expect(lab.fs.invites).toHaveLength(0);
    expect(lab.daemon.gate.snapshot().state).toBe('open');
    lab.fs.legCreationFails = false;
    const next = lab.fs.placeCall();
    await waitFor(() => connected(lab, next.id), 'the next caller connected');
    next.hangup();
    await lab.outcomeOf(next.id);
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

  it('when the call socket drops during the warm-up, the hold tone ends by itself and the dialplan sends the caller to its fallback (s10)', async () => {
    const lab = await startLab({ config: { twin: { warmup_timeout_ms: 500 } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 400 }));
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.playing === 'ring' || undefined, 'the ringback');
    expect(lab.fs.channel(call.id)!.vars.get('playback_timeout_sec')).toBe('2'); // warm-up bound + 1 s
    lab.fs.dropOutboundSockets();
    expect(await call.left).toMatchObject({ kind: 'app-unavailable', vars: { socket_lost: 'true' } });
    expect((await lab.outcomeOf(call.id)).status).toBe('ABANDONED');
    // The dialplan's CUSTOM twin::not_taken event reached the product over its inbound connection.
    await waitFor(() => lab.daemon.freeswitch!.callsNotTaken === 1 || undefined, 'the not-taken count');
    expect(lab.fs.invites).toHaveLength(0);
  });

  it('hands a bridged call to FreeSWITCH and closes its socket; the caller\'s hang-up still ends it (inbound CHANNEL_HANGUP_COMPLETE)', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.session?.closed || undefined, 'the socket closed while bridged');
    expect(lab.fs.channel(call.id)!.vars.get('TWIN_STATUS')).toBe('CONNECTED');
    expect(lab.daemon.activeCalls).toBe(1); // still counted against max_concurrent_calls
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    expect(lab.daemon.activeCalls).toBe(0);
  });

  it('keeps the socket of a bridged call while its inbound connection is down (the end could not reach it otherwise)', async () => {
    const lab = await startLab({ config: { freeswitch: { esl_password: 'not-the-password' } } });
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    await new Promise((r) => setTimeout(r, 50));
    expect(lab.fs.channel(call.id)!.session!.closed).toBe(false);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('settles a handed-over call that ended while the inbound connection was down, at the reconnect', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.session?.closed || undefined, 'handed over');
    lab.fs.restarting = true; // refuse inbound connections for a moment
    lab.fs.dropInbound();
    call.hangup(); // its CHANNEL_HANGUP_COMPLETE goes nowhere
    await new Promise((r) => setTimeout(r, 100));
    lab.fs.restarting = false;
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
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
