/**
 * What the log says, read back from the real logger's output: no secret ever (passwords, tokens,
 * Authorization headers, the callback secret), one line per call outcome, numbers maskable,
 * strangers' caller IDs escaped.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import type { Lab } from '../src/sim/lab.js';
import { Lab as LabClass } from '../src/sim/lab.js';
import { waitFor } from './helpers.js';

const API_TOKEN = 'api-token-never-logged-0123';
const CALLBACK_SECRET = 'cbsecret-never-logged-0123';

function capture(): { stream: PassThrough; lines: () => Record<string, any>[]; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, text: () => text, lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) };
}

async function runCalls(lab: Lab): Promise<string[]> {
  const ids: string[] = [];
  for (const kind of ['asterisk', 'freeswitch'] as const) {
    const call = lab.pbx(kind).placeCall({ number: '+447700900123', name: 'Eve\r\nX-Evil: 1' });
    ids.push(call.id);
    await waitFor(() => lab.pbx(kind).channelVar(call.id, 'TWIN_STATUS'), `${kind} call to be bridged`);
    call.hangup();
  }
  lab.twin.expireTokens(); // the next warm-up gets a 401, and the product logs in again
  lab.twin.script(() => ({ kind: 'null' }));
  const rejected = lab.pbx('asterisk').placeCall({ number: '+447700900456' });
  ids.push(rejected.id);
  await rejected.left;
  await lab.outcomesReached(3);
  return ids;
}

describe('logs', () => {
  it('never writes a password, token, Authorization header or the callback secret, even at trace level', async () => {
    const out = capture();
    const dir = mkdtempSync(join(tmpdir(), 'twin-logs-'));
    const lab = await LabClass.start({
      pbx: ['asterisk', 'freeswitch'],
      log: createLogger({ level: 'trace', destination: out.stream }),
      ari: { password: 'ari-pass-never-logged' },
      freeswitch: { password: 'esl-pass-never-logged' },
      config: {
        http: { listen_port: 0, api_token: API_TOKEN },
        callbacks: { public_url: 'https://connector.example.com', secret: CALLBACK_SECRET, dir, forward_to: ['http://127.0.0.1:9/down'] },
      },
    });
    try {
      await runCalls(lab);
      const port = lab.daemon.httpServer!.port;
      await fetch(`http://127.0.0.1:${port}/v1/calls`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` }, body: '{"to":"+15550100"}' });
      await fetch(`http://127.0.0.1:${port}/v1/calls`, { method: 'POST', headers: { authorization: 'Bearer wrong-token-0123456789' }, body: '{}' });
      await fetch(`http://127.0.0.1:${port}/v1/twin/callbacks/${CALLBACK_SECRET}`, { method: 'POST', body: '{"type":"CALL_ENDED"}' });
      await fetch(`http://127.0.0.1:${port}/v1/twin/callbacks/${CALLBACK_SECRET}`, { method: 'POST', body: 'not json' });
      // The forward URL is down: the failure is logged, without the secret.
      await waitFor(() => out.text().includes('forwarding a Twin callback failed'), 'the forwarding failure to be logged');
      expect(lab.twin.logins).toBe(2); // the 401 made a second login
    } finally {
      await lab.stop();
    }
    const text = out.text();
    expect(text.length).toBeGreaterThan(1000); // it did log, at trace level
    for (const secret of [lab.twin.password, API_TOKEN, 'wrong-token-0123456789', CALLBACK_SECRET, lab.config.asterisk!.password, lab.config.freeswitch!.esl_password]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/); // no JWT
    expect(text.toLowerCase()).not.toContain('bearer ');
    // Every line is one JSON object: the caller's CR/LF could not break a line.
    expect(out.lines().length).toBe(text.trim().split('\n').length);
  });

  it('writes one line per call outcome with id, route, outcome, warm-up and setup times; numbers masked when asked', async () => {
    const out = capture();
    const lab = await LabClass.start({
      pbx: ['asterisk', 'freeswitch'],
      log: createLogger({ level: 'info', destination: out.stream, maskNumbers: true }),
      config: { routes: { table: [{ dialed: '100', bot: 'support' }] } },
    });
    let ids: string[];
    try {
      ids = await runCalls(lab);
    } finally {
      await lab.stop();
    }
    const outcomes = out.lines().filter((l) => l.outcome !== undefined);
    expect(outcomes.map((l) => l.outcome.callId).sort()).toEqual([...ids].sort()); // one line each
    const [first] = outcomes;
    expect(first!.msg).toBe('call connected');
    expect(first!.outcome).toMatchObject({
      status: 'CONNECTED', route: 'table[0]', bot: 'support', caller: '+*********123', dialed: '100',
    });
    // The setup time (call in → bot answered) includes the warm-up's round trip.
    expect(first!.outcome.setupMs).toBeGreaterThanOrEqual(first!.outcome.warmupMs);
    expect(first!.outcome.warmupMs).toBeGreaterThanOrEqual(0);
    expect(outcomes.find((l) => l.outcome.status === 'REJECTED')!.outcome.caller).toBe('+*********456');
    expect(out.text()).not.toContain('447700900');
  });
});
