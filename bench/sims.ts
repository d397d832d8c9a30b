/**
 * Benchmark child process: the Twin simulator and one PBX simulator (argv[2]: asterisk |
 * freeswitch), driven over IPC by bench/setups.ts, so that the parent's heap and CPU are the
 * product's alone.
 */
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { FreeSwitchSimulator } from '../src/sim/freeswitch/esl-sim.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import type { SimCall } from '../src/sim/call-model.js';

export type BenchCommand =
  | { cmd: 'run'; calls: number; ratePerS: number; maxInFlight: number; holdMs: number }
  | { cmd: 'target'; port: number }
  | { cmd: 'hangupAll' }
  | { cmd: 'leftovers' };

export interface RunReport {
  cmd: 'run';
  elapsedMs: number;
  connected: number;
  addedMs: number[];
  /** ARI requests / ESL commands that named the call, up to the bot's dial. */
  requestsUpToDial: number[];
  requestsTotal: number;
  /** CPU time the simulators used during the run, ms. */
  cpuMs: number;
}

export interface Ready {
  cmd: 'ready'; twinUrl: string; email: string; password: string;
  ariUrl?: string; ariUser?: string; ariPassword?: string; eslPort?: number; eslPassword?: string;
}

/** What the benchmark needs from either PBX simulator. */
interface BenchPbx {
  placeCall(n: number): SimCall;
  totalRequests(): number;
  leftovers(): string[];
}

const kind = process.argv[2] === 'freeswitch' ? 'freeswitch' : 'asterisk';
const twin = new TwinSimulator();
twin.keepRecords = 0;

/** Per caller: warm-up time inside Twin, and requests/commands that named this call. */
const warmupMs = new Map<string, number>();
const requestsBefore = new Map<string, number>();
let live: { onConnected: (id: string) => void } | undefined;
const held = new Map<string, () => void>();
const added: number[] = [];
const upToDial: number[] = [];

twin.onAnswered = (callId, ms) => warmupMs.set(callId, ms);
const countRequest = (id: string | undefined) => {
  if (id !== undefined) requestsBefore.set(id, (requestsBefore.get(id) ?? 0) + 1);
};
const onConnectedVar = (id: string, variable: string, value: string) => {
  if (variable === 'TWIN_STATUS' && value === 'CONNECTED') live?.onConnected(id);
};
/** Time from the call reaching the product to the bot's dial, minus the warm-up's own time. */
const onBotDial = (arrivedAt: number, dialAt: number, callerId: string) => {
  added.push(dialAt - arrivedAt - (warmupMs.get(callerId) ?? 0));
  upToDial.push(requestsBefore.get(callerId) ?? 0);
  warmupMs.delete(callerId);
};

function asterisk(): [BenchPbx, () => Promise<Omit<Ready, 'cmd' | 'twinUrl' | 'email' | 'password'>>] {
  const ari = new AriSimulator();
  ari.keepInvites = 0;
  ari.botBehaviour = () => ({ kind: 'answer', afterMs: 0 });
  ari.onRequest = (_, path) => countRequest(/(\d{10}\.\d+)/.exec(path)?.[1]);
  ari.onChannelVar = onConnectedVar;
  ari.onBotDial = onBotDial;
  const pbx: BenchPbx = {
    placeCall: (n) => ari.placeCall({ number: `+1555${String(n).padStart(7, '0')}`, args: ['bot=bench'] }),
    totalRequests: () => ari.totalRequests(),
    leftovers: () => Object.values(ari.leftovers()).flat(),
  };
  return [pbx, async () => {
    await ari.start();
    return { ariUrl: ari.url, ariUser: ari.username, ariPassword: ari.password };
  }];
}

function freeswitch(): [BenchPbx, () => Promise<Omit<Ready, 'cmd' | 'twinUrl' | 'email' | 'password'>>] {
  const fs = new FreeSwitchSimulator({ execDelayMs: 0, gateways: { twin: '127.0.0.1:5070' } });
  fs.keepInvites = 0;
  fs.botBehaviour = () => ({ kind: 'answer', afterMs: 0 });
  fs.onCommand = (uuid) => countRequest(uuid);
  fs.onChannelVar = onConnectedVar;
  fs.onBotDial = onBotDial;
  targetPort = (port) => { fs.socketTarget = { host: '127.0.0.1', port }; };
  const pbx: BenchPbx = {
    placeCall: (n) => fs.placeCall({ number: `+1555${String(n).padStart(7, '0')}`, hints: { bot: 'bench' } }),
    totalRequests: () => fs.totalCommands(),
    leftovers: () => fs.leftovers(),
  };
  return [pbx, async () => {
    await fs.start();
    return { eslPort: fs.port, eslPassword: fs.password };
  }];
}

let targetPort: (port: number) => void = () => {};
const [pbx, startPbx] = kind === 'freeswitch' ? freeswitch() : asterisk();

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

async function run(c: Extract<BenchCommand, { cmd: 'run' }>): Promise<RunReport> {
  added.length = 0;
  upToDial.length = 0;
  const requestsAtStart = pbx.totalRequests();
  const cpuAtStart = process.cpuUsage();
  const started = performance.now();
  let placed = 0;
  let connected = 0;
  let inFlight = 0;
  return new Promise((resolve) => {
    const finish = () => resolve({
      cmd: 'run', elapsedMs: performance.now() - started, connected, addedMs: [...added],
      requestsUpToDial: [...upToDial], requestsTotal: pbx.totalRequests() - requestsAtStart,
      cpuMs: cpuMs(process.cpuUsage(cpuAtStart)),
    });
    const calls = new Map<string, () => void>();
    live = {
      onConnected: (id) => {
        connected += 1;
        inFlight -= 1;
        const hangup = calls.get(id);
        calls.delete(id);
        if (hangup && c.holdMs >= 0) setTimeout(hangup, c.holdMs);
        else if (hangup) held.set(id, hangup);
        if (connected === c.calls) setTimeout(finish, Math.max(c.holdMs, 0) + 200);
        else pump();
      },
    };
    const place = () => {
      placed += 1;
      inFlight += 1;
      const call = pbx.placeCall(placed);
      calls.set(call.id, call.hangup);
      void call.left.then(() => requestsBefore.delete(call.id));
    };
    const pump = () => {
      if (c.ratePerS > 0) return;
      while (placed < c.calls && inFlight < c.maxInFlight) place();
    };
    if (c.ratePerS > 0) {
      const interval = 1000 / c.ratePerS;
      const tick = () => {
        const due = Math.min(c.calls, Math.floor((performance.now() - started) / interval) + 1);
        while (placed < due) place();
        if (placed < c.calls) setTimeout(tick, Math.max(1, interval / 2));
      };
      tick();
    } else {
      pump();
    }
  });
}

process.on('message', (msg: BenchCommand) => {
  void (async () => {
    if (msg.cmd === 'run') process.send!(await run(msg));
    else if (msg.cmd === 'hangupAll') {
      for (const hangup of held.values()) hangup();
      held.clear();
      process.send!({ cmd: 'hangupAll' });
    } else if (msg.cmd === 'target') {
      targetPort(msg.port);
      process.send!({ cmd: 'target' });
    } else if (msg.cmd === 'leftovers') process.send!({ cmd: 'leftovers', leftovers: pbx.leftovers() });
  })();
});

const [, pbxReady] = await Promise.all([twin.start(), startPbx()]);
process.send!({ cmd: 'ready', twinUrl: twin.url, email: twin.email, password: twin.password, ...pbxReady } satisfies Ready);
