/**
 * Issue 22, item 4: every call the product sent to Twin ends in exactly one outcome line (log line,
 * twin_connector_calls_total), whatever restarts happen in between. The real daemon runs as a child
 * process and is killed with SIGKILL while calls are bridged (Asterisk, both bot_leg modes) or
 * handed over to FreeSWITCH; the PBX simulators keep those calls going, as the recordings show
 * (asterisk/second-recording/product-sigkill-restart; freeswitch e1/e2).
 *
 * Each run: A and B are bridged by the first run; C hangs up while no run is up (counted at the
 * next start); the second run sees A's caller and B's bot hang up, then is killed too; D outlives
 * it and E ends while the product is down again; the third run counts D and E, and nothing twice.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SimCall } from '../src/sim/call-model.js';
import { freePort, runDaemonProcess, simulatorsForProcessTests, writeDaemonConfig, type DaemonProcess } from './daemon-process.js';
import { waitFor } from './helpers.js';

const { twin, ari, fs } = simulatorsForProcessTests({ freeswitch: true });

interface Variant {
  name: string;
  pbx: 'asterisk' | 'freeswitch';
  /** The config for this PBX; `port`: a free port, the same for every run. */
  configure(config: Record<string, any>, port: number): void;
  placeCall(): SimCall;
  connected(callId: string): boolean;
  /** The bot of this caller sends BYE. */
  botHangsUp(callId: string): void;
  connectedLine: string;
  leftovers(): string[];
  /** The Twin id the bot leg's INVITE carried for this caller. */
  twinIdOf(callId: string): string | undefined;
}

function twinIdIn(invites: { headers: [string, string][] }[], callId: string): string | undefined {
  const invite = invites.find((i) => i.headers.some(([name, value]) => name === 'X-TWIN-ClientCallId' && value === callId));
  return invite?.headers.find(([name]) => name === 'X-TWIN-CallId')?.[1];
}

const asterisk = (botLeg: 'bridge' | 'dialplan'): Variant => ({
  name: `Asterisk, bot_leg ${botLeg}`,
  pbx: 'asterisk',
  configure: (config) => {
    delete config.freeswitch;
    config.asterisk.bot_leg = botLeg;
  },
  placeCall: () => ari.placeCall(),
  connected: (id) => ari.channel(id)?.vars.get('TWIN_STATUS') === 'CONNECTED',
  // bridge: the bot's own leg hangs up; dialplan: the bot leg of the caller's Dial().
  botHangsUp: (id) => ari.botHangsUp(botLeg === 'bridge' ? ari.botLegOf(id)!.id : id),
  connectedLine: 'connected to Asterisk ARI',
  leftovers: () => {
    const left = ari.leftovers();
    return [...left.channels, ...left.bridges];
  },
  twinIdOf: (id) => twinIdIn(ari.invites, id),
});

const freeswitch: Variant = {
  name: 'FreeSWITCH',
  pbx: 'freeswitch',
  configure: (config, port) => {
    delete config.asterisk;
    config.freeswitch.listen_port = port; // the dialplan's `socket` line names it
    fs.socketTarget = { host: '127.0.0.1', port };
  },
  placeCall: () => fs.placeCall(),
  connected: (id) => fs.channel(id)?.vars.get('twin_next_step') === 'released', // handed over to FreeSWITCH
  botHangsUp: (id) => { fs.botHangsUp(id); },
  connectedLine: 'connected to FreeSWITCH ESL',
  leftovers: () => fs.leftovers(),
  twinIdOf: (id) => twinIdIn(fs.invites, id),
};

/** The outcome lines a run wrote. */
function outcomes(run: DaemonProcess): Record<string, any>[] {
  return run.output().split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as { outcome?: Record<string, any> };
      return parsed.outcome ? [parsed.outcome] : [];
    } catch {
      return [];
    }
  });
}

/** twin_connector_calls_total by outcome, for one PBX. */
async function callsTotal(port: number, pbx: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^twin_connector_calls_total\{pbx="([^"]+)",direction="inbound",outcome="([^"]+)"\} (\d+)$/gm)) {
    if (m[1] === pbx) counts[m[2]!] = Number(m[3]);
  }
  return counts;
}

/** The daemon runs of one test: each started on the same config file (the same call journal), killed with SIGKILL. */
class Runs {
  private readonly all: DaemonProcess[] = [];

  constructor(private readonly config: { path: string; config: Record<string, any> }, private readonly connectedLine: string) {}

  /** Resolves once the run is connected (or has logged `readyLine`) and, after the first, has looked for the calls of the runs before it. */
  async start(readyLine?: string): Promise<DaemonProcess> {
    const run = runDaemonProcess(this.config.path);
    const expected = readyLine ?? (this.all.length === 0 ? this.connectedLine : 'looked for the calls an earlier run sent to Twin');
    this.all.push(run);
    await waitFor(() => run.output().includes(expected), 'the run to be ready', 15_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${run.output()}`); });
    return run;
  }

  async kill(run: DaemonProcess): Promise<void> {
    run.child.kill('SIGKILL');
    await run.exited;
  }

  /** A failed test must not leave a daemon connected to the shared simulators; the journal folder goes too. */
  async killAll(): Promise<void> {
    for (const run of this.all) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await Promise.all(this.all.map((run) => run.exited));
    rmSync(this.config.config.state.dir, { recursive: true, force: true });
  }
}

function lineOf(run: DaemonProcess, id: string): Promise<Record<string, any>> {
  return waitFor(() => outcomes(run).find((o) => o.callId === id), `the outcome line of ${id}`, 10_000)
    .catch((err: Error) => { throw new Error(`${err.message}\n${run.output()}`); });
}

describe.each([asterisk('bridge'), asterisk('dialplan'), freeswitch])('restarts with calls sent to Twin: $name', (variant) => {
  it('counts every call once: the ones going on when a run starts, the ones that ended while none was up, and none twice', async () => {
    const [httpPort, pbxPort] = [await freePort(), await freePort()];
    const written = writeDaemonConfig({ twin, ari, fs }, (config) => {
      config.http = { listen_port: httpPort };
      variant.configure(config, pbxPort);
    });
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5 }); // the bots stay on the line
    fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    const runs = new Runs(written, variant.connectedLine);
    try {
      const first = await runs.start();
      const [a, b, c, d, e] = [0, 1, 2, 3, 4].map(() => variant.placeCall()) as [SimCall, SimCall, SimCall, SimCall, SimCall];
      await waitFor(() => [a, b, c, d, e].every((call) => variant.connected(call.id)), 'five calls to be with the bot', 10_000);
      await runs.kill(first);

      c.hangup(); // while no run is up
      await c.left;
      const second = await runs.start();
      expect(await lineOf(second, c.id)).toMatchObject({
        status: 'CONNECTED', endedBy: 'unknown', detail: expect.stringMatching(/^ended while the product was not running/), bot: 'bot-default',
      });
      a.hangup();
      variant.botHangsUp(b.id);
      const [lineA, lineB] = [await lineOf(second, a.id), await lineOf(second, b.id)];
      expect(lineA).toMatchObject({
        status: 'CONNECTED', endedBy: 'caller', route: 'default', bot: 'bot-default', direction: 'inbound',
        twinId: variant.twinIdOf(a.id), detail: 'sent to Twin before the product restarted',
      });
      expect(lineA.twinId).toEqual(expect.any(String));
      expect(lineB).toMatchObject({ status: 'CONNECTED', endedBy: 'bot', twinId: variant.twinIdOf(b.id) });
      expect(await b.left).toMatchObject({ kind: 'hungup-by-app' }); // its caller is not left alone
      expect(await callsTotal(httpPort, variant.pbx)).toEqual({ connected: 3 });
      await runs.kill(second);

      e.hangup(); // while no run is up, again
      await e.left;
      const third = await runs.start();
      expect(await lineOf(third, e.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'unknown' });
      d.hangup();
      expect(await lineOf(third, d.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller' });
      await new Promise((r) => setTimeout(r, 200)); // anything counted twice would show by now
      expect(outcomes(first)).toEqual([]);
      expect(outcomes(second).map((o) => o.callId).sort()).toEqual([a.id, b.id, c.id].sort());
      expect(outcomes(third).map((o) => o.callId).sort()).toEqual([d.id, e.id].sort());
      expect(await callsTotal(httpPort, variant.pbx)).toEqual({ connected: 2 });
      await waitFor(() => variant.leftovers().length === 0 || undefined, 'nothing left in the PBX', 3000)
        .catch(() => { throw new Error(`left: ${variant.leftovers().join(', ')}`); });
      third.child.kill('SIGTERM');
      expect(await third.exited).toBe(0);
    } finally {
      await runs.killAll();
    }
  }, 90_000);
});

describe('restarts with calls sent to Twin: Asterisk, a caller hangs up while the new run looks at the bridges', () => {
  it('counts the call once, as ended by the caller, and hangs up its bot', async () => {
    const written = writeDaemonConfig({ twin, ari, fs }, (config) => asterisk('bridge').configure(config, 0));
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    const runs = new Runs(written, 'connected to Asterisk ARI');
    try {
      const first = await runs.start();
      const call = ari.placeCall();
      await waitFor(() => ari.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the call to be bridged');
      await runs.kill(first);

      // GET /bridges is answered as Asterisk had it when the request came (caller and bot in the
      // bridge), but the caller's StasisEnd reaches the product before that answer does.
      ari.delayReply = (method, path) => {
        if (method !== 'GET' || path !== '/bridges') return 0;
        ari.delayReply = undefined;
        setImmediate(() => call.hangup());
        return 200;
      };
      const second = await runs.start();
      expect(await lineOf(second, call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'caller', detail: 'sent to Twin before the product restarted' });
      await waitFor(() => ari.leftovers().channels.length + ari.leftovers().bridges.length === 0 || undefined, 'the bot leg and bridge to be gone', 3000)
        .catch(() => { throw new Error(`left: ${JSON.stringify(ari.leftovers())}\n${second.output()}`); });
      expect(outcomes(second)).toHaveLength(1);
    } finally {
      ari.delayReply = undefined;
      await runs.killAll();
    }
  }, 60_000);
});

describe('restarts with calls sent to Twin: FreeSWITCH, a bridged call the killed run had not handed over', () => {
  it('is marked handed over by the next run, whose inbound connection then learns of its end', async () => {
    const port = await freePort();
    const written = writeDaemonConfig({ twin, ari, fs }, (config) => freeswitch.configure(config, port));
    fs.botBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    const runs = new Runs(written, 'connected to FreeSWITCH ESL');
    try {
      // Without its inbound connection the first run keeps each bridged call's socket (nothing would tell it the end).
      fs.restarting = true;
      const first = await runs.start('waiting for calls from FreeSWITCH');
      const call = fs.placeCall();
      await waitFor(() => fs.invites.some((i) => i.headers.some(([, v]) => v === call.id)), 'the bot leg to be dialled');
      // The bridge runs inline on the kept static socket: FreeSWITCH marks the answer itself (the
      // product hears of it only when the bridge ends).
      await waitFor(() => fs.channel(call.id)?.vars.get('TWIN_STATUS') === 'CONNECTED', 'the bot to answer');
      expect(fs.channel(call.id)?.vars.get('twin_next_step')).toBe('not_taken'); // as the shipped dialplan set it before `socket`
      await runs.kill(first); // the socket closes; FreeSWITCH keeps the bridge (e1)
      fs.restarting = false;

      const second = await runs.start();
      await waitFor(() => fs.channel(call.id)?.vars.get('twin_next_step') === 'released', 'the call to be marked handed over');
      freeswitch.botHangsUp(call.id);
      expect(await lineOf(second, call.id)).toMatchObject({ status: 'CONNECTED', endedBy: 'bot', detail: 'sent to Twin before the product restarted' });
      expect(await call.left).toMatchObject({ kind: 'hungup-by-app' }); // twin-after-socket's `released` path
    } finally {
      fs.restarting = false;
      await runs.killAll();
    }
  }, 60_000);
});
