/**
 * Outbound calls over Twilio, end to end over loopback HTTP: the real daemon, the Twin simulator,
 * and the stand-in's Calls API (src/sim/twilio/calls-api.ts, written from Twilio's "Call resource"
 * page). Warm-up first; the call is created only with a Twin id, with inline TwiML that dials the
 * bot with that id; busy / no answer / failed / stopped map as on the PBXs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createLogger } from '../src/log.js';
import { labConfig } from '../src/sim/lab.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { TwilioCallsApiSim } from '../src/sim/twilio/calls-api.js';
import { TwilioSimulator } from '../src/sim/twilio/twilio-sim.js';
import { parseCallRequest, type CallRequestInput } from '../src/outbound/request.js';
import { TwilioLab } from '../src/sim/twilio/twilio-lab.js';
import { twilioLabPerTest } from './twilio-lab-per-test.js';
import { readTwiml } from '../src/sim/twilio/twiml-reader.js';
import { captureLog, waitFor } from './helpers.js';

const TO = '+442079460018';
const FROM = '+12025550143';

/** Rings are shrunk 20 times (1 s → 50 ms), polls every 20 ms: a pause after the bot spans several reads. */
const startLab = twilioLabPerTest(
  (options) => ({ ...options, twilio: { msPerRingSecond: 50, ...options.twilio } }),
  async (lab) => {
    // Every call the product created is over at Twilio: nothing left ringing or talking.
    await waitFor(() => lab.calls.calls.every((c) => ['completed', 'busy', 'failed', 'no-answer', 'canceled'].includes(c.resource.status)), 'every Twilio call to end');
    expect(lab.calls.calls.map((c) => c.twimlProblem).filter(Boolean)).toEqual([]);
  },
);

function call(lab: TwilioLab, input: Partial<CallRequestInput> = {}) {
  return lab.daemon.placeCall(parseCallRequest({ to: TO, from: FROM, bot: 'sales', pbx: 'twilio', ...input }, lab.config));
}

/**
 * The daemon follows its calls by Twilio's callbacks (it has a public_url: `auto`), or by reading
 * the Calls API (`poll`, as the CLI always does): every test of this block runs both ways.
 */
describe.each(['callbacks', 'poll'] as const)('twilio: an outbound call, followed by %s', (mode) => {
  const start = (options: Parameters<typeof startLab>[0] = {}) =>
    startLab({ ...options, config: { ...options.config, twilio: { outbound_status: mode === 'poll' ? 'poll' : 'auto', ...(options.config?.twilio as Record<string, unknown> | undefined) } } });

  it('warms up, creates the call with TwiML that dials the bot with the session id, and connects', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
    const placed = call(lab, { record: true, variables: { lang: 'en' } });
    const result = await placed.result;

    expect(result).toMatchObject({ id: placed.id, status: 'connected', to: TO, from: FROM, bot: 'sales', pbx: 'twilio', endedBy: 'bot' });
    const warmup = lab.twin.warmups[0]!;
    expect(warmup.body.calls![0]).toMatchObject({ callId: placed.id, number: TO, callerId: FROM, variables: { lang: 'en', direction: 'outbound' } });
    const twinId = (JSON.parse(warmup.answer!) as Record<string, string>)[placed.id];
    expect(result.twinId).toBe(twinId);

    const created = lab.calls.calls[0]!;
    expect(created.params).toMatchObject({ To: TO, From: FROM, Timeout: '30' });
    const twiml = readTwiml(created.params.Twiml!);
    if (mode === 'poll') {
      expect(created.params.StatusCallback).toBeUndefined();
      expect(twiml.children.map((v) => v.name)).toEqual(['Dial', 'Pause', 'Hangup']);
    } else {
      expect(created.params).toMatchObject({
        StatusCallback: 'https://connector.example.test/twilio/outbound-status', StatusCallbackMethod: 'POST', StatusCallbackEvent: 'ringing answered completed',
      });
      expect(twiml.children.map((v) => v.name)).toEqual(['Dial']);
      expect(twiml.children[0]!.attrs.action).toBe('https://connector.example.test/twilio/outbound-dial-action');
      // Twilio told the daemon everything: the Calls API was only written to, never read.
      expect(lab.calls.apiRequests.filter((r) => r.method === 'GET')).toEqual([]);
    }
    expect(twiml.children[0]!.attrs).toMatchObject({ timeout: '30', callerId: FROM });

    const headers = Object.fromEntries(lab.twilio.invites[0]!.headers);
    expect(headers['X-TWIN-CallId']).toBe(twinId);
    expect(headers['X-TWIN-ClientCallId']).toBe(placed.id);
    expect(headers['X-TWIN-EnableRecord']).toBe('1');
    expect(lab.calls.apiRequests.every((r) => r.authorized)).toBe(true);
    expect(await created.ended).toBe('completed');
  });

  it('tells a subscriber who hangs up first from a bot that does', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    lab.calls.calleeBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 150 });
    expect(await call(lab).result).toMatchObject({ status: 'connected', endedBy: 'subscriber' });
  });

  it.each([
    ['busy', { kind: 'busy', afterMs: 5 }, 'busy'],
    ['no answer', { kind: 'no-answer' }, 'no-answer'],
    ['failed', { kind: 'failed' }, 'failed'],
  ] as const)('maps a subscriber %s to the PBXs\' outcome, and never reaches the bot', async (_name, behaviour, status) => {
    const lab = await start({ config: { outbound: { ring_timeout_s: 10 } } });
    lab.calls.calleeBehaviour = () => behaviour;
    const result = await call(lab).result;
    expect(result).toMatchObject({ status, detail: `Twilio call status ${status}` });
    expect(lab.twilio.invites).toHaveLength(0);
    expect(lab.calls.calls[0]!.params.Timeout).toBe('10');
  });

  it('reports a bot leg that fails as bot-failed', async () => {
    const lab = await start();
    lab.twilio.botBehaviour = () => ({ kind: 'busy' });
    expect(await call(lab).result).toMatchObject({ status: 'bot-failed', detail: expect.stringContaining('bot leg busy') });
  });

  it('never creates a call Twin answers null for', async () => {
    const lab = await start();
    lab.twin.script(() => ({ kind: 'null' }));
    expect(await call(lab).result).toMatchObject({ status: 'rejected' });
    expect(lab.calls.calls).toHaveLength(0);
    expect(lab.calls.apiRequests).toHaveLength(0);
  });

  it('cancels a ringing call when the product stops (Ctrl-C in the CLI)', async () => {
    const lab = await start();
    lab.calls.calleeBehaviour = () => ({ kind: 'no-answer' });
    const placed = call(lab);
    const created = await waitFor(() => lab.calls.calls[0], 'the call to be created');
    await waitFor(() => created.resource.status === 'ringing', 'the phone to ring');
    await lab.daemon.stop(0);
    expect(await placed.result).toMatchObject({ status: 'error', detail: 'the product is stopping' });
    expect(await created.ended).toBe('canceled');
  });

  it('bounds the ring time by what the Twin session has left', async () => {
    const lab = await start({ config: { session: { max_age_s: 20 }, outbound: { ring_timeout_s: 60 } } });
    lab.twilio.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 20 });
    await call(lab).result;
    const timeout = Number(lab.calls.calls[0]!.params.Timeout);
    expect(timeout).toBeGreaterThanOrEqual(16);
    expect(timeout).toBeLessThanOrEqual(18);
  });

  it('never writes the auth token into the log or the result, and says plainly when Twilio refuses it', async () => {
    const out = captureLog();
    const lab = await start({ log: createLogger({ level: 'trace', destination: out.stream }) });
    lab.twilio.botBehaviour = () => ({ kind: 'answer', hangupAfterMs: 20 });
    const good = await call(lab).result;
    expect(good.status).toBe('connected');
    // The same product with the wrong token: Twilio answers 401, nothing is dialled.
    const wrong = await TwilioLab.start({ log: createLogger({ level: 'trace', destination: out.stream }), config: { twilio: { auth_token: 'wrong-token-123' } } });
    try {
      const refused = await wrong.daemon.placeCall(parseCallRequest({ to: TO, from: FROM, bot: 'b', pbx: 'twilio' }, wrong.config)).result;
      expect(refused).toMatchObject({ status: 'error', detail: expect.stringContaining('HTTP 401 (Twilio error 20003)') });
      expect(JSON.stringify(refused)).not.toContain('wrong-token-123');
    } finally {
      await wrong.stop();
    }
    expect(out.text()).not.toContain(lab.twilio.authToken);
    expect(out.text()).not.toContain('wrong-token-123');
    expect(JSON.stringify(good)).not.toContain(lab.twilio.authToken);
  });
});

describe('twilio: an outbound call followed by callbacks, when Twilio cannot deliver them', () => {
  it('still learns the call\'s end from the Calls API, read every 30 poll intervals (1 s at least), and counts it', async () => {
    const lab = await startLab();
    lab.calls.losingCallbacks = true; // every status callback and the <Dial> action fail (HTTP 502)
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
    const result = await call(lab).result;
    expect(result).toMatchObject({ status: 'connected' });
    expect(lab.calls.calls[0]!.params.StatusCallback).toBeDefined(); // it was asked for callbacks
    expect(lab.calls.apiRequests.filter((r) => r.method === 'GET').length).toBeGreaterThan(0);
  });
});

describe('twilio: an outbound call, followed by reading the Calls API', () => {
  it('tells a subscriber who hangs up between two of the product\'s reads from a bot hanging up first', async () => {
    const lab = await startLab({ config: { twilio: { outbound_status: 'poll' } } });
    lab.twilio.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    lab.calls.calleeBehaviour = () => ({ kind: 'answer', afterMs: 5 }); // hangs up only when told
    let hungUp = false;
    lab.calls.beforeLegsRead = async (parentSid) => {
      const created = lab.calls.calls[0];
      if (hungUp || !created || lab.calls.legsOf(parentSid)[0]?.status !== 'in-progress') return;
      hungUp = true;
      created.hangup(); // after any read of the call in this poll, before this read of its legs
      await waitFor(() => lab.calls.legsOf(parentSid).every((leg) => leg.status === 'completed') || undefined, 'the bot leg ended');
    };
    expect(await call(lab).result).toMatchObject({ status: 'connected', endedBy: 'subscriber' });
    expect(hungUp).toBe(true);
  });
});

describe('twin-connector call --pbx twilio', () => {
  const SID = `AC${'1f'.repeat(16)}`;
  const TOKEN = 'cli-secret-token-5c1e';

  /** The CLI as a person runs it, against the Twin simulator and the stand-in's Calls API. */
  async function withStandIns(test: (ctx: { api: TwilioCallsApiSim; standIn: TwilioSimulator; configFile: string }) => Promise<void>): Promise<void> {
    const twin = new TwinSimulator();
    const standIn = new TwilioSimulator({ accountSid: SID, authToken: TOKEN, msPerRingSecond: 50 });
    const api = new TwilioCallsApiSim(standIn);
    await twin.start();
    const apiUrl = await api.start();
    const configFile = join(mkdtempSync(join(tmpdir(), 'twilio-cli-')), 'twin.yaml');
    // No account in the file: --account and --token bring it; the file only points at the stand-in.
    writeFileSync(configFile, stringify({ ...labConfig(twin), twilio: { api_url: apiUrl, poll_interval_ms: 20 } }));
    try {
      await test({ api, standIn, configFile });
    } finally {
      await api.stop();
      await twin.stop();
    }
  }

  function spawnCli(args: string[]) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { child, exited, out: () => out };
  }

  it('places the call with --account and --token, prints each step, exits 0, and never prints the token', async () => {
    await withStandIns(async ({ api, standIn, configFile }) => {
      standIn.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
      const run = spawnCli(['call', '--config', configFile, '--to', TO, '--from', FROM, '--bot', 'sales', '--account', SID, '--token', TOKEN]);
      expect(await run.exited).toBe(0);
      expect(run.out().trim().split('\n')).toEqual([
        'warming up the Twin session', `dialling ${TO}`, 'answered; connecting to the bot', 'connected to the bot',
        expect.stringMatching(/^outcome: connected \(twin id [0-9a-f-]{36}; bot hung up first\)$/),
      ]);
      expect(run.out()).not.toContain(TOKEN);
      expect(api.calls).toHaveLength(1);
      expect(api.apiRequests.every((r) => r.authorized)).toBe(true);
    });
  });

  it('refuses a malformed --account before any call, exit 2, without echoing the token', async () => {
    await withStandIns(async ({ api, configFile }) => {
      const run = spawnCli(['call', '--config', configFile, '--to', TO, '--from', FROM, '--bot', 'b', '--account', 'AC123', '--token', TOKEN]);
      expect(await run.exited).toBe(2);
      expect(run.out()).toContain('--account "AC123": must be an Account SID');
      expect(run.out()).not.toContain(TOKEN);
      expect(api.apiRequests).toHaveLength(0);
    });
  });

  it('cancels the ringing call on Ctrl-C and exits 1', async () => {
    await withStandIns(async ({ api, configFile }) => {
      api.calleeBehaviour = () => ({ kind: 'no-answer' });
      const run = spawnCli(['call', '--config', configFile, '--to', TO, '--from', FROM, '--bot', 'b', '--account', SID, '--token', TOKEN]);
      try {
        const created = await waitFor(() => api.calls[0], 'the call to be created', 10_000);
        await waitFor(() => created.resource.status === 'ringing', 'the phone to ring');
        run.child.kill('SIGINT');
        expect(await run.exited).toBe(1);
        expect(run.out()).toContain('stopping: hanging up the call');
        expect(run.out()).toContain('outcome: error (the product is stopping; twin id');
        expect(await created.ended).toBe('canceled');
      } finally {
        run.child.kill('SIGKILL');
      }
    });
  });
});
