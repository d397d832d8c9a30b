/** FreeSWITCH-only behaviour (ESL); the cases shared with Asterisk are in e2e-matrix.test.ts. */
import { describe, expect, it } from 'vitest';
import { parseCallRequest } from '../src/outbound/request.js';
import { Lab } from '../src/sim/lab.js';
import { ManualClock } from '../src/clock.js';
import { createLogger } from '../src/log.js';
import { captureLog, labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('freeswitch');

const connected = (lab: Lab, id: string) => lab.fs.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED';

describe('FreeSWITCH (ESL) specifics', () => {
  it('hands the caller back after a quick warm-up: one multiset (dial string, next steps, answer hook, after_bot_hangup, transfer guard), socket closed: 2 ESL commands per call (issue 20)', async () => {
    // Quick: well within hold_delay_ms even on a loaded machine (the default 50 ms was not, once).
    const lab = await startLab({ config: { freeswitch: { hold_delay_ms: 5000 } } });
    const lines: string[] = [];
    const apps: (string | undefined)[] = [];
    lab.fs.onCommand = (_, line, app) => { lines.push(line); apps.push(app); };
    const call = lab.fs.placeCall({ name: 'Ann Smith' });
    await waitFor(() => connected(lab, call.id), 'connected');
    const boundS = Math.ceil(lab.config.twin.warmup_timeout_ms / 1000) + 1;
    const twinId = lab.fs.invites[0]!.headers.find(([name]) => name === 'X-TWIN-CallId')![1];
    expect(lines).toEqual(['connect', 'sendmsg']);
    // The hand-back: the dialplan's `bridge ${twin_bot_dial}` dials this (h1); the hook marks the
    // answer; the hold's variables and the transfer guard (issue 14) ride along. One multiset, its
    // argument a body (FreeSWITCH reads header lines a byte at a time), split on `|`.
    expect(apps[1]).toBe(`multiset ^^|twin_bot_dial={sip_h_X-TWIN-CallId=${twinId},sip_h_X-TWIN-ClientCallId=${call.id},`
      + "origination_caller_id_number=+15551230000,origination_caller_id_name='Ann Smith',originate_timeout=30}sofia/gateway/twin/twinbot|"
      + 'twin_next_step=bot_failed|bridge_pre_execute_aleg_app=multiset|bridge_pre_execute_aleg_data=TWIN_STATUS=CONNECTED twin_next_step=released|'
      + `twin_after_bot=hangup|twin_after_cause=NORMAL_CLEARING|continue_on_fail=true|playback_timeout_sec=${boundS}|`
      + 'force_transfer_context=twin-transfers|twin_transfer_timeout=30|twin_fb_action=hangup|twin_fb_cause=NORMAL_CLEARING');
    const channel = lab.fs.channel(call.id)!;
    expect(channel.session!.closed).toBe(true); // no socket while the caller talks to the bot
    expect(channel.state).toBe('bot'); // in the dialplan's bridge after `socket`
    expect(channel.vars.get('origination_caller_id_name')).toBeUndefined();
    expect(lab.fs.invites[0]!.from).toContain('"Ann Smith"');
    expect(channel.vars.get('twin_next_step')).toBe('released'); // set by the dialplan once the bot answered
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller', twinId });
    expect(lab.fs.commands.get(call.id)).toBe(2);
  });

  it('after shedding a late caller, tells the dialplan (twin_trunk=OVERLOADED) for 300 ms: people take the next caller without the product, then calls flow again', async () => {
    const clock = new ManualClock(Date.now());
    const lab = await startLab({ clock, config: { trunk: { max_handover_delay_ms: 1000 } } });
    const late = lab.fs.placeCall({ handoverLagMs: 3000 });
    expect(await lab.outcomeOf(late.id)).toMatchObject({ status: 'BUSY' });
    await waitFor(() => lab.pbx().trunkState() === 'OVERLOADED' || undefined, 'twin_trunk=OVERLOADED');

    const next = lab.fs.placeCall();
    expect(await next.left).toMatchObject({ kind: 'continued', extension: 'agent', context: 'twin-fallback', vars: { TWIN_STATUS: 'BUSY' } });
    expect(lab.outcomes.map((o) => o.callId)).not.toContain(next.id); // the product never had it

    clock.advance(300);
    await waitFor(() => lab.pbx().trunkState() === 'NOT_INUSE' || undefined, 'twin_trunk=NOT_INUSE again');
    const onTime = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(onTime.id)?.vars.get('TWIN_STATUS') === 'CONNECTED' || undefined, 'the next caller connected');
    onTime.hangup();
    expect(await lab.outcomeOf(onTime.id)).toMatchObject({ status: 'CONNECTED' });
  });

  it('at the shutdown timeout, hangs up a handed-over call even when setting TWIN_STATUS gets no answer (issue 13, item 2)', async () => {
    const lab = await startLab({ config: { freeswitch: { command_timeout_ms: 300 } } });
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id) && lab.fs.channel(call.id)?.session?.closed, 'the bridged call handed to FreeSWITCH');
    lab.fs.delayInboundApi = (command) => (command.startsWith('uuid_setvar') ? 1000 : 0);
    await lab.daemon.stop(0); // the shutdown timeout: every call still live is hung up
    expect(await call.left).toMatchObject({ kind: 'hungup-by-app', vars: { TWIN_STATUS: 'ERROR' } });
  });

  it('plays the hold only when the warm-up takes longer than hold_delay_ms, its variables first; it runs inline, so uuid_break goes over the inbound connection and the hand-back waits behind it (h5)', async () => {
    const lab = await startLab({ config: { freeswitch: { hold_delay_ms: 20 } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const lines: string[] = [];
    const inbound: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    lab.fs.onInboundCommand = (line) => inbound.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.channel(call.id)?.playing === 'ring' || undefined, 'the ringback');
    await waitFor(() => connected(lab, call.id), 'connected');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^api uuid_setvar_multi ${call.id} continue_on_fail=true;playback_timeout_sec=3;force_transfer_context=`)),
      'sendmsg', 'sendmsg', // the playback, then the hand-back's multiset
    ]);
    expect(inbound).toContain(`api uuid_break ${call.id} all`);
    call.hangup();
    await lab.outcomeOf(call.id);
  });

  it('plays no hold while the inbound connection is down: nothing could stop it before its bound', async () => {
    const lab = await startLab({ config: { freeswitch: { hold_delay_ms: 20, esl_password: 'not-the-password' } } });
    lab.twin.script(() => ({ kind: 'slow', delayMs: 150 }));
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    expect(lines).not.toContain('sendmsg\nplayback');
    expect(lines.filter((l) => l === 'sendmsg')).toHaveLength(1); // the bridge only
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

  it('explains a wrong ESL password, keeps retrying, and still takes calls on the call socket: the bridge runs over it (h7)', async () => {
    const lab = await startLab({ config: { freeswitch: { esl_password: 'not-the-password' } } });
    expect(lab.daemon.freeswitch!.lastProblem).toBe(`FreeSWITCH ESL at 127.0.0.1:${lab.fs.port} refused the password (see event_socket.conf.xml)`);
    expect(lab.daemon.freeswitch!.state).toBe('reconnecting');
    expect(lab.fs.globals.has('twin_trunk')).toBe(false);
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected without the inbound connection');
    expect(lines.slice(1)).toEqual([
      'myevents json', expect.stringMatching(/^nixevent /), 'linger',
      // FreeSWITCH sets TWIN_STATUS=CONNECTED itself when the bot answers: the inline bridge tells nothing before it ends.
      `api uuid_setvar_multi ${call.id} continue_on_fail=true;playback_timeout_sec=3;force_transfer_context=twin-transfers;`
        + 'twin_transfer_timeout=30;twin_fb_action=hangup;twin_fb_cause=NORMAL_CLEARING;'
        + 'bridge_pre_execute_aleg_app=set;bridge_pre_execute_aleg_data=TWIN_STATUS=CONNECTED;twin_after_bot=hangup;twin_after_cause=NORMAL_CLEARING',
      'sendmsg',
    ]);
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
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

  it('counts a caller who hung up before the dialplan reached `socket` as not taken, and not a caller the product turned away', async () => {
    const lab = await startLab();
    await waitFor(() => lab.daemon.freeswitch!.state === 'connected' || undefined, 'the inbound connection');
    lab.fs.placeCall({ leavesBeforeSocket: true });
    await waitFor(() => lab.daemon.freeswitch!.callsNotTaken === 1 || undefined, 'the first not-taken count');
    // Twin says null: the product hangs the caller up before any hand-back, so twin_next_step is
    // still not_taken at the hang-up; socket_host tells it apart.
    lab.twin.script(() => ({ kind: 'null' }));
    const rejected = lab.fs.placeCall();
    expect((await lab.outcomeOf(rejected.id)).status).toBe('REJECTED');
    await rejected.left;
    lab.fs.placeCall({ leavesBeforeSocket: true }); // events arrive in order: this one comes after the rejected call's
    await waitFor(() => lab.daemon.freeswitch!.callsNotTaken === 2 || undefined, 'the second not-taken count');
    expect(lab.daemon.freeswitch!.callsNotTaken).toBe(2);
    expect(lab.twin.warmups).toHaveLength(1);
  });

  it('a hand-back whose +OK is lost with the socket but which FreeSWITCH ran is still followed to its end, counted once', async () => {
    const lab = await startLab();
    lab.fs.onChannelVar = (uuid, name) => {
      if (name === 'twin_bot_dial') lab.fs.channel(uuid)?.session?.socket.destroy(); // the multiset runs on, its reply is lost
    };
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id) || undefined, 'the bot answered the handed-back caller');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    expect(lab.daemon.freeswitch!.activeCalls).toBe(0);
  });

  it('a hand-back lost with the socket before FreeSWITCH read it: the caller goes to not_taken, and the call is no longer followed', async () => {
    const lab = await startLab();
    lab.fs.onCommand = (uuid, _line, app) => {
      if (app?.startsWith('multiset')) lab.fs.channel(uuid)?.session?.socket.destroy();
    };
    const call = lab.fs.placeCall();
    expect(await call.left).toMatchObject({ kind: 'app-unavailable' }); // twin-after-socket's not_taken: people take the caller
    // The simulator's fallback ends the channel at once, so the product finds it gone: ABANDONED;
    // on a real FreeSWITCH the caller is still with people then, and it says BOT_FAILED.
    expect(['BOT_FAILED', 'ABANDONED']).toContain((await lab.outcomeOf(call.id)).status);
    expect(lab.fs.invites).toHaveLength(0);
    await waitFor(() => lab.daemon.freeswitch!.activeCalls === 0 || undefined, 'no call left followed');
  });

  it('follows a handed-back call over the inbound connection: CHANNEL_BRIDGE is the answer, CHANNEL_HANGUP_COMPLETE the caller\'s hang-up', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id) && lab.fs.channel(call.id)?.session?.closed, 'the bot answered the handed-back caller');
    expect(lab.daemon.activeCalls).toBe(1); // still counted against max_concurrent_calls
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
    expect(lab.daemon.activeCalls).toBe(0);
  });

  it('a busy bot: twin-after-socket sets BOT_FAILED and runs the route\'s fallback itself; its twin::bot_failed carries the SIP cause (h2)', async () => {
    const lab = await startLab({ config: { routes: { default: { fallback: { action: 'continue', context: 'agents', extension: 'queue' } } } } });
    lab.fs.botBehaviour = () => ({ kind: 'busy' });
    const call = lab.fs.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'queue', vars: { TWIN_STATUS: 'BOT_FAILED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'BOT_FAILED', detail: 'bot leg busy (SIP 486)' });
    expect(lab.fs.commands.get(call.id)).toBe(2); // no uuid_transfer: the dialplan did it
    expect(lab.fs.channel(call.id)?.vars.get('force_transfer_context')).toBeUndefined();
  });

  it('a bot that hangs up first: twin-after-socket runs after_bot_hangup and tells the product (twin::bot_hangup)', async () => {
    const lab = await startLab({ config: { routes: { default: { after_bot_hangup: { action: 'continue', context: 'agents', extension: 'survey' } } } } });
    lab.fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 30 });
    const call = lab.fs.placeCall();
    expect(await call.left).toMatchObject({ kind: 'continued', context: 'agents', extension: 'survey', vars: { TWIN_STATUS: 'CONNECTED' } });
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot' });
  });

  it('a caller who hangs up while the bot leg rings: ABANDONED, over the inbound connection', async () => {
    const lab = await startLab();
    lab.fs.botBehaviour = () => ({ kind: 'no-answer' });
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.invites.length === 1 || undefined, 'the bot leg ringing');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'ABANDONED', detail: 'caller hung up while the bot leg rang' });
  });

  it('without issue 20\'s twin-after-socket (no `bot_failed`), bridges over the socket, and says what to install', async () => {
    const log = captureLog();
    const fsOptions = { gateways: { twin: '127.0.0.1:5070' } };
    const lab = await startLab({ log: createLogger({ destination: log.stream }), freeswitch: fsOptions });
    lab.fs.afterSocketHasBotFailed = false;
    lab.fs.dropInbound(); // the product asks again at the reconnect
    await waitFor(() => log.lines().some((l) => String(l.msg).includes('has no extension "bot_failed"')) || undefined, 'the error');
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id), 'connected');
    expect(lines).toContain('sendmsg');
    expect(lab.fs.channel(call.id)!.state).toBe('socket');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('a dialplan from before issue 20 (`socket … async full`, no bridge after it) is served as before: the bridge over the socket, handed over once answered', async () => {
    const lab = await startLab();
    const lines: string[] = [];
    lab.fs.onCommand = (_, line) => lines.push(line);
    const call = lab.fs.placeCall({ socket: 'async' });
    await waitFor(() => connected(lab, call.id) && lab.fs.channel(call.id)!.session!.closed, 'connected and handed over');
    expect(lines).toEqual([
      'connect', 'myevents json', expect.stringMatching(/^nixevent /), 'linger',
      expect.stringMatching(new RegExp(`^api uuid_setvar_multi ${call.id} continue_on_fail=true;playback_timeout_sec=3;force_transfer_context=`)),
      'sendmsg', expect.stringMatching(new RegExp(`^api uuid_setvar_multi ${call.id} TWIN_STATUS=CONNECTED;twin_next_step=released;`)),
    ]);
    expect(lab.fs.channel(call.id)!.state).toBe('socket');
    call.hangup();
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
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

  it('settles a handed-back call that ended while the inbound connection was down, at the reconnect', async () => {
    const lab = await startLab();
    const call = lab.fs.placeCall();
    await waitFor(() => connected(lab, call.id) && lab.daemon.activeCalls === 1 && lab.fs.channel(call.id)?.session?.closed, 'answered');
    await waitFor(() => lab.outcomes.length === 0 && lab.daemon.freeswitch!.state === 'connected', 'steady');
    lab.fs.restarting = true; // refuse inbound connections for a moment
    lab.fs.dropInbound();
    call.hangup(); // its CHANNEL_HANGUP_COMPLETE goes nowhere
    await new Promise((r) => setTimeout(r, 100));
    lab.fs.restarting = false;
    expect(await lab.outcomeOf(call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
  });

  it('learns at the reconnect that the bot answered a handed-back caller while the inbound connection was down', async () => {
    const lab = await startLab();
    lab.fs.botBehaviour = () => ({ kind: 'answer', afterMs: 150 });
    const call = lab.fs.placeCall();
    await waitFor(() => lab.fs.invites.length === 1 || undefined, 'the bot leg ringing');
    lab.fs.restarting = true;
    lab.fs.dropInbound(); // the CHANNEL_BRIDGE goes nowhere
    await waitFor(() => connected(lab, call.id), 'answered meanwhile');
    lab.fs.restarting = false;
    await waitFor(() => lab.daemon.freeswitch!.state === 'connected' || undefined, 'reconnected', 3000);
    await new Promise((r) => setTimeout(r, 50));
    call.hangup();
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
