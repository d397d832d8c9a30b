/** The ESL simulator's bytes, pinned to values copied from shared/fixtures/freeswitch recordings. */
import { describe, expect, it } from 'vitest';
import {
  CommandReader, connectReply, fsUrlEncode, lingerNotice, originateApp, parseDialString, plainEvent, socketMode, splitApiArgs,
} from '../src/sim/freeswitch/wire.js';

describe('ESL wire format (simulator)', () => {
  it('URL-encodes values the way FreeSWITCH does (a1 connect reply)', () => {
    expect(fsUrlEncode('sip:mod_sofia@127.0.0.1:5090')).toBe('sip%3Amod_sofia%40127.0.0.1%3A5090');
    expect(fsUrlEncode('Sat, 21 Nov 2026 14:11:34 GMT')).toBe('Sat,%2021%20Nov%202026%2014%3A11%3A34%20GMT');
    expect(fsUrlEncode('{sip_h_X-TWIN-EnableRecord=1,sip_h_X-TWIN-CallId=abc}sofia/gateway/bot/bot'))
      .toBe('%7Bsip_h_X-TWIN-EnableRecord%3D1,sip_h_X-TWIN-CallId%3Dabc%7Dsofia/gateway/bot/bot');
  });

  it('splits an originate the way FreeSWITCH does: an unquoted &socket(… async full) becomes a static socket (s8)', () => {
    const [, bare] = splitApiArgs('{origination_uuid=u1}sofia/gateway/carrier/+44 &socket(127.0.0.1:41945 async full)');
    expect(originateApp(bare!)).toEqual({ app: 'socket', arg: '127.0.0.1:41945' });
    expect(socketMode(originateApp(bare!)!.arg)).toBe('static');
    const [aleg, quoted] = splitApiArgs("{origination_uuid=u1}sofia/gateway/carrier/+44 '&socket(127.0.0.1:41945 async full)'");
    expect(aleg).toBe('{origination_uuid=u1}sofia/gateway/carrier/+44');
    expect(originateApp(quoted!)).toEqual({ app: 'socket', arg: '127.0.0.1:41945 async full' });
    expect(socketMode(originateApp(quoted!)!.arg)).toBe('async');
    expect(connectReply([], 'static')).toContain('Socket-Mode: static\nControl: single-channel\n');
  });

  it('frames plain events with Content-Length first, counting the closing blank line', () => {
    const bytes = plainEvent([['Event-Name', 'CHANNEL_HANGUP'], ['Hangup-Cause', 'NORMAL_CLEARING']]);
    const headerEnd = bytes.indexOf('\n\n');
    const payload = bytes.slice(headerEnd + 2);
    expect(bytes.slice(0, headerEnd)).toBe(`Content-Length: ${Buffer.byteLength(payload)}\nContent-Type: text/event-plain`);
    expect(payload).toBe('Event-Name: CHANNEL_HANGUP\nHangup-Cause: NORMAL_CLEARING\n\n');
  });

  it('ends the connect reply with the recorded trailer and no Content-Length', () => {
    const reply = connectReply([['Event-Name', 'CHANNEL_DATA'], ['Unique-ID', 'u1']]);
    expect(reply.startsWith('Event-Name: CHANNEL_DATA\n')).toBe(true);
    expect(reply.endsWith('Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n')).toBe(true);
    expect(reply).not.toContain('Content-Length');
  });

  it('writes the linger notice with a raw Channel-Name', () => {
    expect(lingerNotice('u1', 'sofia/lab/sipp@127.0.0.1:5082', -1)).toBe('Content-Type: text/disconnect-notice\n'
      + 'Controlled-Session-UUID: u1\nContent-Disposition: linger\nChannel-Name: sofia/lab/sipp@127.0.0.1:5082\nLinger-Time: -1\nContent-Length: 0\n\n');
  });

  it('reads commands split across chunks, and dial strings with quoted values', () => {
    const reader = new CommandReader();
    expect(reader.push(Buffer.from('sendmsg\ncall-command: exe'))).toEqual([]);
    const [cmd] = reader.push(Buffer.from('cute\nexecute-app-name: bridge\n\n'));
    expect(cmd!.headers.get('call-command')).toBe('execute');
    const { vars, endpoint } = parseDialString("{sip_h_X-A='a, b',originate_timeout=30}[sip_h_X-B=c]sofia/gateway/twin/bot");
    expect(Object.fromEntries(vars)).toEqual({ 'sip_h_X-A': 'a, b', originate_timeout: '30', 'sip_h_X-B': 'c' });
    expect(endpoint).toBe('sofia/gateway/twin/bot');
  });
});

describe('the hand-back\'s multiset argument (issue 20)', () => {
  it('splits on a delimiter no value holds: `|` unless a value has it (a failover dial string), then `^` …', async () => {
    const { multisetArgument } = await import('../src/pbx/freeswitch/fs-call.js');
    expect(multisetArgument(['a=x;y,z', "b={c='d e'}sofia/gateway/twin/bot"])).toBe("^^|a=x;y,z|b={c='d e'}sofia/gateway/twin/bot");
    expect(multisetArgument(['a=sofia/gateway/x/1|sofia/gateway/y/1', 'b=2'])).toBe('^^^a=sofia/gateway/x/1|sofia/gateway/y/1^b=2');
    expect(() => multisetArgument(['a=|^`<>%&'])).toThrow(/no multiset delimiter is free/);
  });

  it('the simulator reads a sendmsg\'s text/plain body as the app\'s argument, and skips blank lines as FreeSWITCH does', async () => {
    const { CommandReader } = await import('../src/sim/freeswitch/wire.js');
    const reader = new CommandReader();
    const body = '^^|a=1|b=x y';
    const bytes = `sendmsg\ncall-command: execute\nexecute-app-name: multiset\ncontent-type: text/plain\ncontent-length: ${body.length}\n\n${body}\n\napi status\n\n`;
    const first = reader.push(Buffer.from(bytes.slice(0, 70)));
    expect(first).toEqual([]);
    const rest = reader.push(Buffer.from(bytes.slice(70)));
    expect(rest.map((c) => [c.line, c.headers.get('execute-app-name'), c.body])).toEqual([
      ['sendmsg', 'multiset', body], ['api status', undefined, undefined],
    ]);
  });
});
