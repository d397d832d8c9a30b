/**
 * The call-socket server FreeSWITCH's `socket` app connects to, faced with peers that are not
 * FreeSWITCH: raw TCP sockets on loopback (issue 13, item 1).
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectReply } from '../src/sim/freeswitch/wire.js';
import type { Lab } from '../src/sim/lab.js';
import { createLogger } from '../src/log.js';
import { captureLog, labPerTest, waitFor } from './helpers.js';

const startLab = labPerTest('freeswitch');

interface Peer {
  socket: Socket;
  received: () => string;
  /** Resolves when the product has closed the socket; fails the test if it stays open for long. */
  closed: () => Promise<void>;
}

/** A raw TCP peer of the product's call socket, from `localAddress` (all of 127/8 is loopback on Linux). */
async function rawPeer(lab: Lab, localAddress = '127.0.0.1'): Promise<Peer> {
  const socket = connect({ host: '127.0.0.1', port: lab.daemon.freeswitch!.listenPort, localAddress });
  let received = '';
  socket.on('data', (chunk) => { received += chunk.toString(); });
  socket.on('error', () => {});
  let isClosed = false;
  socket.on('close', () => { isClosed = true; });
  const closed = () => waitFor(() => isClosed, 'the product to close the socket', 3000).then(() => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => received, closed };
}

/** The `connect` reply of a made-up caller. */
function callerChannelData(uuid: string): string {
  return connectReply([
    ['Event-Name', 'CHANNEL_DATA'], ['Unique-ID', uuid], ['Caller-Caller-ID-Number', '+15550199'],
    ['Caller-Destination-Number', '100'], ['variable_twin_bot', 'stranger-bot'],
  ]);
}

async function expectNextCallConnected(lab: Lab): Promise<void> {
  const call = lab.fs.placeCall();
  await waitFor(() => lab.fs.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the next call to be bridged');
  call.hangup();
  expect((await lab.outcomeOf(call.id)).status).toBe('CONNECTED');
}

describe('FreeSWITCH call socket: peers that are not FreeSWITCH', () => {
  it('closes a call socket whose event cannot be parsed (<bad<xml>) and keeps serving calls', async () => {
    // Without containment the socket would stay open until a setup command times out.
    const lab = await startLab({ config: { freeswitch: { command_timeout_ms: 60_000 } } });
    const peer = await rawPeer(lab);
    await waitFor(() => peer.received().startsWith('connect\n\n') || undefined, 'the connect command');
    const body = '<bad<xml>';
    peer.socket.write(`${callerChannelData('11111111-2222-3333-4444-555555555555')}`);
    peer.socket.write(`Content-Length: ${body.length}\nContent-Type: text/event-xml\n\n${body}`);
    await peer.closed(); // the product closed it: a parse error is contained to its socket
    await expectNextCallConnected(lab);
  });

  it('sends nothing to a peer outside freeswitch.allowed_peers and closes it at once: no warm-up, no session id', async () => {
    const lab = await startLab({ config: { freeswitch: { allowed_peers: ['127.0.0.1'] } } });
    const stranger = await rawPeer(lab, '127.0.0.2');
    stranger.socket.write(callerChannelData('66666666-2222-3333-4444-555555555555')); // plays a caller regardless
    await stranger.closed();
    expect(stranger.received()).toBe('');
    expect(lab.twin.warmups).toHaveLength(0);
    await expectNextCallConnected(lab); // FreeSWITCH itself (127.0.0.1) still gets in
  });

  it('takes the ESL host\'s address as the allow-list by default (loopback for a local FreeSWITCH)', async () => {
    const lab = await startLab();
    const stranger = await rawPeer(lab, '127.0.0.3');
    await stranger.closed();
    expect(stranger.received()).toBe('');
    await expectNextCallConnected(lab);
  });

  it('accepts a CIDR in allowed_peers', async () => {
    const lab = await startLab({ config: { freeswitch: { allowed_peers: ['127.0.0.0/30'] } } });
    const neighbour = await rawPeer(lab, '127.0.0.2');
    await waitFor(() => neighbour.received().startsWith('connect\n\n') || undefined, 'the connect command');
    neighbour.socket.destroy();
    const outside = await rawPeer(lab, '127.0.0.4');
    await outside.closed();
    expect(outside.received()).toBe('');
  });

  it('closes a socket that never answers `connect` after freeswitch.connect_timeout_ms', async () => {
    const lab = await startLab({ config: { freeswitch: { connect_timeout_ms: 100 } } });
    const silent = await rawPeer(lab);
    await silent.closed();
    expect(silent.received()).toBe('connect\n\n');
    expect(lab.twin.warmups).toHaveLength(0);
    await expectNextCallConnected(lab);
  });

  // Issue 22, item 6: FreeSWITCH's first bytes on its `socket` connection are always the reply to
  // `connect` (a command/reply carrying CHANNEL_DATA). A connect timeout of 10 minutes: only the
  // bytes themselves can be what closes these sockets.
  const NOT_ESL: [string, string][] = [
    ['an HTTP request (CR LF line ends)', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a TLS ClientHello (binary)', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03'],
    ['a line that is no ESL header', 'hello\n'],
    ['a header block that is not the connect reply', 'Content-Type: text/plain\nReply-Text: hi\n\n'],
    ['a command/reply without the channel data', 'Content-Type: command/reply\nReply-Text: -ERR no\n\n'],
  ];
  it.each(NOT_ESL)('closes a peer whose first bytes cannot be the `connect` reply (%s) at once, not at connect_timeout_ms', async (_what, bytes) => {
    const log = captureLog();
    const lab = await startLab({
      log: createLogger({ level: 'warn', destination: log.stream }),
      config: { freeswitch: { connect_timeout_ms: 600_000 } },
    });
    const peer = await rawPeer(lab);
    await waitFor(() => peer.received().startsWith('connect\n\n') || undefined, 'the connect command');
    peer.socket.write(Buffer.from(bytes, 'latin1'));
    await peer.closed().finally(() => peer.socket.destroy());
    const warnings = log.lines().filter((l) => /call socket/.test(l.msg));
    expect(warnings.map((l) => l.msg)).toEqual(['a FreeSWITCH call socket sent bytes that cannot be its `connect` reply; closing it']);
    expect(log.text()).not.toContain('hello'); // the peer's bytes are never logged
    expect(lab.twin.warmups).toHaveLength(0);
    await expectNextCallConnected(lab);
  });

  it('keeps a peer whose `connect` reply arrives a byte at a time', async () => {
    const lab = await startLab({ config: { freeswitch: { connect_timeout_ms: 600_000 } } });
    const peer = await rawPeer(lab);
    await waitFor(() => peer.received().startsWith('connect\n\n') || undefined, 'the connect command');
    const reply = callerChannelData('77777777-2222-3333-4444-555555555555');
    for (const byte of reply) peer.socket.write(byte);
    // The product took it for a call: it goes on with the set-up commands.
    await waitFor(() => peer.received().includes('myevents json') || undefined, 'the set-up commands');
    peer.socket.destroy();
  });
});
