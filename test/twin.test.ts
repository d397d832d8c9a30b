import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger, silentLogger } from '../src/log.js';
import { TwinAuth, TwinAuthError } from '../src/twin/auth.js';
import { TwinHttp } from '../src/twin/http.js';
import { botCallerId, buildSipTarget, safeHeaderValue } from '../src/twin/sip.js';
import { cleanNumber } from '../src/core/caller-number.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { Lab } from '../src/sim/lab.js';
import { expectNoLeftovers, waitFor } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function twinAuth(clock: ManualClock, password?: string) {
  const sim = new TwinSimulator();
  await sim.start();
  const http = new TwinHttp({ maxConnections: 4, maxWaitMs: 1000 });
  cleanups.push(() => sim.stop(), () => http.close());
  const config = parseConfig({
    twin: { iam_url: sim.url, cis_url: sim.url, email: sim.email, password: password ?? sim.password, sip: { uri: 'sip:b@t' } },
    freeswitch: { esl_password: 'ClueCon' },
    routes: { default: { bot: 'b' } },
  }, {});
  return { sim, auth: new TwinAuth(config.twin, http, clock, silentLogger) };
}

describe('Twin IAM token', () => {
  it('is shared by concurrent calls (one login in flight) and renewed before the JWT expires', async () => {
    const clock = new ManualClock(Date.now());
    const { sim, auth } = await twinAuth(clock);
    const tokens = await Promise.all(Array.from({ length: 20 }, () => auth.token()));
    expect(new Set(tokens).size).toBe(1);
    expect(sim.logins).toBe(1);
    clock.advance(3500_000);
    await auth.token();
    expect(sim.logins).toBe(1);
    clock.advance(41_000); // within a minute of exp (3600 s)
    expect(await auth.token()).not.toBe(tokens[0]);
    expect(sim.logins).toBe(2);
  });

  it('fails with a clear message that carries no password', async () => {
    const { auth } = await twinAuth(new ManualClock(), 'wrong-password-123');
    const err = await auth.token().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwinAuthError);
    expect((err as Error).message).toBe('Twin IAM login failed: HTTP 401 (wrong email or password?)');
  });
});

describe('SIP headers', () => {
  it('keeps only safe characters and bounds the length', () => {
    expect(safeHeaderValue('abc\r\nVia: evil')).toBe('abcVia: evil');
    expect(safeHeaderValue('"quoted" <sip:x>\u0000')).toBe('quoted sip:x');
    expect(safeHeaderValue('x'.repeat(500))).toHaveLength(128);
  });

  it('fills URI and header templates and adds the record header only when recording', () => {
    const sip = {
      uri: 'sip:{bot}@twin.example', headers: { 'X-TWIN-CallId': '{twin_id}', 'X-Empty': '{external_id}' },
      record_header: 'X-TWIN-EnableRecord', anonymous_caller: 'anonymous',
    };
    const fields = { twin_id: 'abc-1', call_id: 'c', external_id: '', bot: 'sales bot<', caller: '+1', dialed: '100' };
    const caller = { number: '+15551230000', name: 'Ann' };
    expect(buildSipTarget(sip, fields, false, caller)).toEqual({
      uri: 'sip:salesbot@twin.example', headers: { 'X-TWIN-CallId': 'abc-1' }, callerId: { number: '+15551230000', name: 'Ann' }, twinId: 'abc-1',
    });
    expect(buildSipTarget(sip, fields, true, caller).headers['X-TWIN-EnableRecord']).toBe('1');
  });

  it('gives the bot leg a caller id cleaned of everything a stranger could smuggle in', () => {
    expect(botCallerId('+1555\r\nX-Evil: 1', 'Evil \\" Name\r\n', 'anonymous')).toEqual({ number: 'anonymous', name: 'Evil Name' });
    // Issue 22, item 3: never digits glued together out of junk (seen on real Asterisk: +442, +155511).
    expect(botCallerId('+44\r\nX-Evil2: 1', '', 'anonymous').number).toBe('anonymous');
    expect(botCallerId('+1555$[1+1]', '', 'anonymous').number).toBe('anonymous');
    expect(botCallerId('sip:evil;x', '', 'anonymous')).toEqual({ number: 'anonymous', name: 'anonymous' });
    expect(botCallerId('+1 (555) 123-0000', '', 'anonymous')).toEqual({ number: '+15551230000', name: '+15551230000' });
    expect(botCallerId('', 'Zoë O\'Brien', '+442079460000')).toEqual({ number: '+442079460000', name: 'Zoë OBrien' });
    expect(botCallerId('+1555\r\n', 'x'.repeat(80), 'anonymous').name).toHaveLength(40);
  });

  it('reads a number from the whole value or not at all: cleanNumber (warm-up callerId, outcome lines)', () => {
    expect(cleanNumber('+44 20 7946-0018')).toBe('+442079460018');
    expect(cleanNumber('*72#')).toBe('*72#');
    expect(cleanNumber('+44\r\nX-Evil2')).toBe('anonymous');
    expect(cleanNumber('+1555$[1+1]')).toBe('anonymous');
    expect(cleanNumber('${SHELL(id)}')).toBe('anonymous');
    expect(cleanNumber('')).toBe('anonymous');
  });
});

describe('logs', () => {
  it('never contain a password, a token or an Authorization header, even at trace level', async () => {
    let output = '';
    const sink = new Writable({ write(chunk, _enc, done) { output += String(chunk); done(); } });
    const lab = await Lab.start({ log: createLogger({ level: 'trace', destination: sink }), ari: { password: 'ari-pass-5f3e9' } });
    cleanups.push(async () => { await expectNoLeftovers(lab, ["asterisk"]); await lab.stop(); });
    const first = lab.ari.placeCall();
    await waitFor(() => lab.ari.channel(first.id)?.vars.get('TWIN_STATUS'), 'first call connected');
    lab.twin.expireTokens();
    lab.twin.script(() => ({ kind: 'status', status: 500 }));
    const second = lab.ari.placeCall();
    await second.left;
    first.hangup();
    await lab.outcomesReached(2);

    const tokens = lab.twin.warmups.map((w) => w.authorization?.slice('Bearer '.length)).filter((t): t is string => !!t);
    expect(tokens.length).toBeGreaterThan(1);
    expect(output).toContain('logged in to Twin IAM');
    expect(output).toContain('"status":"UNAVAILABLE"');
    for (const secret of [lab.twin.password, lab.ari.password, ...tokens]) expect(output).not.toContain(secret);
    expect(output.toLowerCase()).not.toContain('bearer');
  });
});
