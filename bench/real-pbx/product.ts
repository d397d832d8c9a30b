/**
 * The product under test, run the way a customer runs it: `node dist/src/cli.js run --config <file>`,
 * with a generated config (JSON is YAML) plus the mode's overrides.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Options } from './args.js';
import type { BenchMode } from './modes.js';
import { merge } from '../../src/sim/lab.js';
import type { TwinStandIn } from './twin-standin.js';
import { sleep } from './pbx.js';
import { readTail } from './sipp.js';

/** dist/bench/real-pbx/product.js → dist/src/cli.js */
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export function productConfig(o: Options, twin: TwinStandIn, mode: BenchMode): Record<string, unknown> {
  const base: Record<string, unknown> = {
    log: { level: 'warn' },
    shutdown: { timeout_s: 5 },
    twin: {
      iam_url: twin.url, cis_url: twin.url, email: twin.email, password: twin.password,
      sip: { uri: botUri(o), headers: { 'X-TWIN-CallId': '{twin_id}' }, record_header: 'X-TWIN-EnableRecord' },
    },
    ...(o.pbx === 'asterisk'
      ? { asterisk: { url: o.ariUrl, username: o.ariUser, password: o.ariPassword, app: o.app } }
      : {
        freeswitch: {
          listen_host: '127.0.0.1', listen_port: o.productPort, esl_host: o.eslHost, esl_port: o.eslPort,
          esl_password: o.eslPassword, bot_endpoint: 'sofia/gateway/twin/{user}', hold: 'ring',
        },
      }),
    // Far above the benchmark's rates: the trunk gate must not be what is measured.
    trunk: { max_concurrent_calls: 5000, max_calls_per_second: 2000 },
    routes: { default: { bot: 'lab-bot', record: true, fallback: { action: 'hangup', cause: 34 } } },
  };
  return merge(base, mode.config);
}

export function botUri(o: Options): string {
  return `sip:twinbot@${o.host}:${o.botPort}`;
}

export interface ProductProcess {
  pid: number;
  /** Set when the product died (its log tail). */
  died(): string | undefined;
  stop(): Promise<void>;
  /** Sends a signal (faults.ts: SIGKILL) and resolves when the process is gone. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export async function startProduct(o: Options, config: Record<string, unknown>, files: { config: string; log: string }): Promise<ProductProcess> {
  await checkFree(o);
  writeFileSync(files.config, `${JSON.stringify(config, null, 2)}\n`);
  const product = spawnProduct(files);
  await waitReady(o, product);
  return product;
}

/** Starts `twin-connector run` on a config file already written, without waiting for it to be ready (a restart). */
export function spawnProduct(files: { config: string; log: string }): ProductProcess {
  const out = openSync(files.log, 'w');
  const child = spawn(process.execPath, [...(process.env.TWIN_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), CLI, 'run', '--config', files.config], { stdio: ['ignore', out, out] });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const died = () => (gone() ? readTail(files.log) || `exit ${child.exitCode}` : undefined);
  const kill = async (signal: NodeJS.Signals) => {
    if (gone()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  return { pid: child.pid!, died, stop: () => stopChild(child), kill };
}

/**
 * Someone else already serving the Stasis app / the socket port (another product on the lab PBX)
 * would take our calls, or make ours fail to start. The previous run's app may take a moment to go.
 */
async function checkFree(o: Options): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (!(o.pbx === 'asterisk' ? await ariAppRegistered(o) : listening(o.productPort))) return;
    await sleep(100);
  }
  throw new Error(o.pbx === 'asterisk'
    ? `the Stasis app '${o.app}' is already registered: another product (or ARI client) is connected; stop it or use --app`
    : `127.0.0.1:${o.productPort} is already listening: another product runs; stop it or use --product-port`);
}

/** Ready = the Stasis app is registered (Asterisk) / the call socket listens (FreeSWITCH). */
async function waitReady(o: Options, product: ProductProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const dead = product.died();
    if (dead) throw new Error(`the product exited at start:\n${dead}`);
    if (o.pbx === 'asterisk' ? await ariAppRegistered(o) : listening(o.productPort)) return;
    await sleep(100);
  }
  await product.stop();
  throw new Error('the product did not become ready within 20 s');
}

async function ariAppRegistered(o: Options): Promise<boolean> {
  const auth = Buffer.from(`${o.ariUser}:${o.ariPassword}`).toString('base64');
  const res = await fetch(`${o.ariUrl}/ari/applications/${o.app}`, { headers: { authorization: `Basic ${auth}` } }).catch(() => undefined);
  return res?.status === 200;
}

/**
 * A TCP socket in LISTEN state on 127.0.0.1/0.0.0.0:port, from /proc/net/tcp. Probing by connecting
 * would look to the product like FreeSWITCH handing it a call.
 */
export function listening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const table = readFileSync('/proc/net/tcp', 'utf8');
  return table.split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return (f[1] === `0100007F:${hex}` || f[1] === `00000000:${hex}`) && f[3] === '0A';
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
