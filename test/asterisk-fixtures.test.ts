/**
 * The Asterisk simulator against recordings of a real Asterisk 22.10.1 made with
 * bench/real-pbx/ari-probe.ts (test/fixtures/asterisk/<name>/recording.json).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { waitFor } from './helpers.js';

interface Recording {
  events: ({ type: string; state?: string } | { request: string; status: number })[];
  responsesToCaller: string[];
}

const ari = new AriSimulator();
const AUTH = `Basic ${Buffer.from('asterisk:asterisk').toString('base64')}`;

beforeAll(async () => { await ari.start(); });
afterAll(async () => { await ari.stop(); });

describe('Asterisk simulator vs recordings', () => {
  it('ringing-caller: a caller the shipped [from-customers] leaves ringing enters Stasis in state Ring; POST answer makes it Up (ChannelStateChange before the 204)', async () => {
    const recording = JSON.parse(readFileSync(new URL('fixtures/asterisk/ringing-caller/recording.json', import.meta.url), 'utf8')) as Recording;
    const seen: Recording['events'] = [];
    const ws = new WebSocket(`${ari.url.replace('http', 'ws')}/ari/events?app=twin-probe`, { headers: { authorization: AUTH } });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.on('message', (data) => {
      const event = JSON.parse(String(data)) as { type: string; channel?: { state: string } };
      seen.push({ type: event.type, state: event.channel?.state });
    });
    const call = ari.placeCall({ app: 'twin-probe' });
    await waitFor(() => seen.length > 0 || undefined, 'StasisStart');
    const res = await fetch(`${ari.url}/ari/channels/${call.id}/answer`, { method: 'POST', headers: { authorization: AUTH } });
    seen.push({ request: 'POST answer', status: res.status });
    call.hangup();
    ws.close();
    // What the product relies on: the state at StasisStart, and what answer does (variables and hang-up events aside).
    const relevant = (events: Recording['events']) => events.filter((e) => !('type' in e) || e.type === 'StasisStart' || e.type === 'ChannelStateChange');
    expect(relevant(seen)).toEqual(relevant(recording.events));
    expect(recording.responsesToCaller.slice(0, 3)).toEqual(['100 INVITE', '180 INVITE', '200 INVITE']); // the phone rang, then was answered
  });
});
