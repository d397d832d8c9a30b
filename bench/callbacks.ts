/**
 * Callback benchmark: Twin's callbacks POSTed to the daemon's HTTP port by many clients at once,
 * each stored with fsync before its 200 and forwarded to a customer URL on loopback. Prints
 * receipts per second, the 200's latency p50/p99 (the fsync is in it), the time until every
 * callback was forwarded, and a repeat round (all duplicates).
 * Run with: npm run bench:callbacks
 * Last line: callbacks received_per_s=N p50_ms=N p99_ms=N forwarded_all_s=N duplicates_per_s=N
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { closeServer, listen } from '../src/sim/http-util.js';
import { Lab } from '../src/sim/lab.js';

const COUNT = Number(process.env.BENCH_CALLBACKS ?? 3000);
const CLIENTS = 50;
const SECRET = 'bench-callback-secret-0123';

async function main(): Promise<void> {
  let forwarded = 0;
  const customer = createServer((req, res) => {
    req.resume();
    req.on('end', () => { forwarded += 1; res.writeHead(204).end(); });
  });
  const customerPort = await listen(customer, 0);
  const lab = await Lab.start({
    config: {
      http: { listen_port: 0 },
      callbacks: {
        public_url: 'https://connector.example.com', secret: SECRET, dir: join(mkdtempSync(join(tmpdir(), 'twin-bench-cb-')), 'callbacks'),
        forward_to: [`http://127.0.0.1:${customerPort}/twin-results`],
      },
    },
  });
  const url = `http://127.0.0.1:${lab.daemon.httpServer!.port}/v1/twin/callbacks/${SECRET}`;
  const agent = new Agent({ connections: CLIENTS });
  const bodies = Array.from({ length: COUNT }, (_, i) => JSON.stringify({
    type: 'CALL_ENDED', callId: `twin-${i}`, data: { callId: `pbx-${i}` }, result: { durationS: 42, transcript: 'x'.repeat(400) },
  }));

  const round = async (): Promise<{ perSecond: number; latencies: number[]; results: Map<string, number> }> => {
    const latencies: number[] = [];
    const results = new Map<string, number>();
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      while (next < COUNT) {
        const body = bodies[next++]!;
        const t = performance.now();
        const res = await request(url, { method: 'POST', body, dispatcher: agent });
        const answer = await res.body.json() as { result?: string };
        latencies.push(performance.now() - t);
        const key = `${res.statusCode} ${answer.result}`;
        results.set(key, (results.get(key) ?? 0) + 1);
      }
    }));
    return { perSecond: COUNT / ((performance.now() - started) / 1000), latencies: latencies.sort((a, b) => a - b), results };
  };

  const started = performance.now();
  const first = await round();
  while (forwarded < COUNT) await new Promise((r) => setTimeout(r, 10));
  const forwardedAllS = (performance.now() - started) / 1000;
  const repeat = await round();
  await new Promise((r) => setTimeout(r, 200));

  const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
  console.log(`callbacks: ${COUNT} POSTs from ${CLIENTS} clients, each fsync'd before the 200, forwarded to a loopback customer`);
  console.log(`first round      ${first.perSecond.toFixed(0)} /s, 200 latency p50 ${pct(first.latencies, 0.5).toFixed(2)} ms, p99 ${pct(first.latencies, 0.99).toFixed(2)} ms, answers ${JSON.stringify(Object.fromEntries(first.results))}`);
  console.log(`all forwarded    ${forwardedAllS.toFixed(2)} s after the first POST (${forwarded} deliveries)`);
  console.log(`repeat round     ${repeat.perSecond.toFixed(0)} /s, answers ${JSON.stringify(Object.fromEntries(repeat.results))}, forwarded again: ${forwarded - COUNT}`);
  console.log(`callbacks received_per_s=${first.perSecond.toFixed(0)} p50_ms=${pct(first.latencies, 0.5).toFixed(2)} p99_ms=${pct(first.latencies, 0.99).toFixed(2)} forwarded_all_s=${forwardedAllS.toFixed(2)} duplicates_per_s=${repeat.perSecond.toFixed(0)}`);
  await agent.close();
  await lab.stop();
  await closeServer(customer);
}

await main();
