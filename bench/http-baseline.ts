/**
 * The floor under the Twilio webhook bench's tail: plain HTTP round trips over loopback between two
 * Node processes, with no product code at all. The child answers each POST after BENCH_TWIN_MS (as
 * the Twin simulator does); this process sends BENCH_RATE POSTs a second through an undici Pool (as
 * the product's Twin client does) and prints what the round trip adds over the server's own wait.
 * Run with: npm run build && node dist/bench/http-baseline.js
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const RATE = Number(process.env.BENCH_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const WAIT_MS = Number(process.env.BENCH_TWIN_MS ?? 50);

function serve(): void {
  const server = createServer((req, res) => {
    const arrived = performance.now();
    req.resume();
    req.on('end', () => setTimeout(() => {
      const body = JSON.stringify({ waitedMs: performance.now() - arrived });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    }, WAIT_MS));
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

async function drive(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['serve']);
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 512, keepAliveTimeout: 30_000, pipelining: 1 });
  const added: number[] = [];
  const pending: Promise<void>[] = [];
  const startedAt = performance.now();
  for (let i = 0; i < RATE * SECONDS; i += 1) {
    const wait = startedAt + (i * 1000) / RATE - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sentAt = performance.now();
    pending.push(pool.request({ path: '/api/v1/calls', method: 'POST', body: '{"calls":[]}', headers: { 'content-type': 'application/json' } })
      .then(async (res) => {
        const { waitedMs } = (await res.body.json()) as { waitedMs: number };
        added.push(performance.now() - sentAt - waitedMs);
      }));
  }
  await Promise.all(pending);
  await pool.close();
  child.kill();
  added.sort((a, b) => a - b);
  console.log(`http-baseline rate=${RATE} wait_ms=${WAIT_MS} requests=${added.length} p50_added_ms=${percentile(added, 0.5).toFixed(2)} `
    + `p99_added_ms=${percentile(added, 0.99).toFixed(2)} max_added_ms=${added.at(-1)!.toFixed(2)}`);
}

if (process.argv[2] === 'serve') serve();
else await drive();
