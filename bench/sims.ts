/**
 * Benchmark child process: the Asterisk and Twin simulators, driven over IPC by bench/setups.ts,
 * so that the parent's heap and CPU are the product's alone.
 */
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';

export type BenchCommand =
  | { cmd: 'run'; calls: number; ratePerS: number; maxInFlight: number; holdMs: number }
  | { cmd: 'hangupAll' }
  | { cmd: 'leftovers' };

export interface RunReport {
  cmd: 'run';
  elapsedMs: number;
  connected: number;
  addedMs: number[];
  requestsUpToDial: number[];
  requestsTotal: number;
  /** CPU time the simulators used during the run, ms. */
  cpuMs: number;
}

const twin = new TwinSimulator();
const ari = new AriSimulator();
twin.keepRecords = 0;
ari.keepInvites = 0;
ari.botBehaviour = () => ({ kind: 'answer', afterMs: 0 });

/** Per caller channel: warm-up time inside Twin, and REST requests that named this call. */
const warmupMs = new Map<string, number>();
const requestsBefore = new Map<string, number>();
const callerOf = (path: string) => /(\d{10}\.\d+)/.exec(path)?.[1];
let live: { onConnected: (id: string) => void } | undefined;
const held = new Map<string, () => void>();

twin.onAnswered = (callId, ms) => warmupMs.set(callId, ms);
ari.onRequest = (_, path) => {
  const id = callerOf(path);
  if (id !== undefined) requestsBefore.set(id, (requestsBefore.get(id) ?? 0) + 1);
};
ari.onChannelVar = (id, variable, value) => {
  if (variable === 'TWIN_STATUS' && value === 'CONNECTED') live?.onConnected(id);
};

const added: number[] = [];
const upToDial: number[] = [];
ari.onBotDial = (stasisStartAt, dialAt, callerId) => {
  added.push(dialAt - stasisStartAt - (warmupMs.get(callerId) ?? 0));
  upToDial.push(requestsBefore.get(callerId) ?? 0);
  warmupMs.delete(callerId);
};

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

async function run(c: Extract<BenchCommand, { cmd: 'run' }>): Promise<RunReport> {
  added.length = 0;
  upToDial.length = 0;
  const requestsAtStart = ari.totalRequests();
  const cpuAtStart = process.cpuUsage();
  const started = performance.now();
  let placed = 0;
  let connected = 0;
  let inFlight = 0;
  return new Promise((resolve) => {
    const finish = () => resolve({
      cmd: 'run', elapsedMs: performance.now() - started, connected, addedMs: [...added],
      requestsUpToDial: [...upToDial], requestsTotal: ari.totalRequests() - requestsAtStart,
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
      const call = ari.placeCall({ number: `+1555${String(placed).padStart(7, '0')}`, args: ['bot=bench'] });
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
    } else if (msg.cmd === 'leftovers') process.send!({ cmd: 'leftovers', ...ari.leftovers() });
  })();
});

await Promise.all([twin.start(), ari.start()]);
process.send!({ cmd: 'ready', ariUrl: ari.url, twinUrl: twin.url, email: twin.email, password: twin.password, ariUser: ari.username, ariPassword: ari.password });
