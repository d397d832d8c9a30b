/**
 * Records what a real Asterisk does with a caller the shipped [from-customers] leaves ringing
 * (Ringing() before Stasis()): the channel's state in its StasisStart, what `POST answer` does to
 * it, and the SIP responses the caller got, into test/fixtures/asterisk/ringing-caller/recording.json;
 * the simulator must do the same (test/asterisk-fixtures.test.ts).
 *
 *   node dist/bench/real-pbx/ari-probe.js test/fixtures/asterisk/ringing-caller
 *
 * The call goes through the bench dialplan's extension 7200 ([from-customers]' shape) with the
 * global TWIN_BENCH_APP pointed at this probe's own Stasis app. Needs the lab of
 * bench/real-pbx/README.md (ARI on 8088, SIPp as caller on 5080) and no benchmark running.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { callerScenario } from './sipp.js';

const ARI = 'http://127.0.0.1:8088/ari';
const AUTH = `Basic ${Buffer.from('asterisk:asterisk').toString('base64')}`;
const APP = 'twin-probe';

async function ari(method: string, path: string): Promise<number> {
  const res = await fetch(`${ARI}${path}`, { method, headers: { authorization: AUTH } });
  await res.text();
  return res.status;
}

async function main(): Promise<void> {
  const dir = resolve(process.argv[2] ?? 'test/fixtures/asterisk/ringing-caller');
  const events: Record<string, unknown>[] = [];
  const ws = new WebSocket(`ws://127.0.0.1:8088/ari/events?app=${APP}&subscribeAll=false`, { headers: { authorization: AUTH } });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  await ari('POST', `/asterisk/variable?variable=TWIN_BENCH_APP&value=${APP}`);
  const answered = new Promise<number>((done) => {
    ws.on('message', (data) => {
      const event = JSON.parse(String(data)) as { type: string; channel?: { id: string; state: string } };
      events.push({ type: event.type, state: event.channel?.state });
      if (event.type === 'StasisStart' && event.channel) {
        // Ringing for 300 ms as a caller would during a warm-up, then answered as the product does in bridge mode.
        const id = event.channel.id;
        setTimeout(() => void ari('POST', `/channels/${id}/answer`).then(async (status) => {
          events.push({ request: 'POST answer', status });
          setTimeout(() => void ari('DELETE', `/channels/${id}`).then(() => done(status)), 300);
        }), 300);
      }
    });
  });
  const work = mkdtempSync(join(tmpdir(), 'ari-probe-'));
  writeFileSync(join(work, 'caller.xml'), callerScenario(['X-Acc-Endpoint: hostile'], undefined)); // the bench's caller header (args.ts)
  writeFileSync(join(work, 'numbers.csv'), 'SEQUENTIAL\n+15550001;\n');
  const sipp = spawn('sipp', ['127.0.0.1:5060', '-sf', join(work, 'caller.xml'), '-inf', join(work, 'numbers.csv'), '-s', '7200',
    '-i', '127.0.0.1', '-p', '5080', '-m', '1', '-d', '5000', '-timeout', '20s', '-nostdin', '-trace_msg', '-message_file', join(work, 'messages.log')],
  { stdio: 'ignore' });
  await answered;
  await new Promise((r) => sipp.once('exit', r));
  ws.close();
  const responses = [...readFileSync(join(work, 'messages.log'), 'utf8').matchAll(/^SIP\/2\.0 (\d{3}) [^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*?CSeq: \d+ (\w+)/gm)]
    .map((m) => `${m[1]} ${m[2]}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'recording.json'), `${JSON.stringify({
    recorded: new Date().toISOString(), asterisk: '22.10.1', dialplan: 'bench-extensions.conf 7200: Ringing(), Stasis()',
    events, responsesToCaller: responses,
  }, null, 2)}\n`);
  console.log(`recorded ${events.length} events, responses ${responses.join(', ')} into ${dir}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
