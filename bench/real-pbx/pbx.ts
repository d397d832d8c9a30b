/**
 * What the runner asks of the PBX under test: load the bench dialplan and its globals, count
 * channels (and bridges), and for Asterisk watch the Stasis app's task queue.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Options } from './args.js';
import { EslClient } from './esl.js';

const run = promisify(execFile);

export interface BenchGlobals {
  twinUrl: string;
  token: string;
  botUri: string;
  /** Stasis app name (Asterisk). */
  app: string;
  /** host:port of the product's call socket (FreeSWITCH). */
  productSocket: string;
}

export interface Leftovers {
  channels: number;
  bridges?: number;
}

export interface PbxControl {
  readonly kind: 'asterisk' | 'freeswitch';
  /** Reload the dialplan and set the globals the bench dialplan reads; throws with a hint when it cannot. */
  prepare(globals: BenchGlobals, extensions: string[]): Promise<void>;
  leftovers(): Promise<Leftovers>;
  /** Asterisk only: starts watching the Stasis app's task queue (after resetting its stats). */
  queueWatch?(): Promise<QueueWatch>;
  close(): void;
}

export interface QueueWatch {
  /** Max depth seen since start(), or undefined when the app's queue does not exist. */
  stop(): Promise<number | undefined>;
}

export async function connectPbx(o: Options): Promise<PbxControl> {
  return o.pbx === 'asterisk' ? new AsteriskControl(o) : FreeswitchControl.connect(o);
}

class AsteriskControl implements PbxControl {
  readonly kind = 'asterisk';
  constructor(private readonly o: Options) {}

  /** One CLI command through the configured runner (asterisk -rx, or the lab's cli.sh). */
  async cli(command: string): Promise<string> {
    const [file, ...args] = this.o.cli;
    const { stdout } = await run(file!, [...args, command], { timeout: 10_000 });
    return stdout;
  }

  private async ari(method: string, path: string): Promise<Response> {
    const auth = Buffer.from(`${this.o.ariUser}:${this.o.ariPassword}`).toString('base64');
    return fetch(`${this.o.ariUrl}/ari${path}`, { method, headers: { authorization: `Basic ${auth}` } });
  }

  async prepare(g: BenchGlobals, extensions: string[]): Promise<void> {
    const info = await this.ari('GET', '/asterisk/info').catch((err: Error) => { throw new Error(`ARI at ${this.o.ariUrl}: ${err.message}`); });
    if (!info.ok) throw new Error(`ARI at ${this.o.ariUrl} answered ${info.status} (user/password?)`);
    // PUT /asterisk/modules/{module} is ARI's "reload module".
    const reload = await this.ari('PUT', '/asterisk/modules/pbx_config.so');
    if (!reload.ok && reload.status !== 204) throw new Error(`reloading pbx_config over ARI: HTTP ${reload.status}`);
    for (const [name, value] of [['TWIN_BENCH_URL', g.twinUrl], ['TWIN_BENCH_TOKEN', g.token], ['TWIN_BENCH_BOT', g.botUri], ['TWIN_BENCH_APP', g.app]]) {
      const q = new URLSearchParams({ variable: name!, value: value! });
      const res = await this.ari('POST', `/asterisk/variable?${q}`);
      if (!res.ok) throw new Error(`setting global ${name} over ARI: HTTP ${res.status}`);
    }
    await this.checkDialplan(extensions);
  }

  private async checkDialplan(extensions: string[]): Promise<void> {
    for (const exten of extensions) {
      const shown = await this.cli(`dialplan show ${exten}@twin-bench`);
      if (/There is no existence/i.test(shown) || !shown.includes(`'${exten}'`)) {
        throw new Error(`extension ${exten}@twin-bench is not in the dialplan: include dialplan/asterisk/bench-extensions.conf (see bench/real-pbx/README.md)`);
      }
    }
    const modules = await this.cli('module show like func_');
    for (const m of ['func_curl', 'func_json']) {
      if (!modules.includes(m)) process.stdout.write(`warning: ${m}.so is not loaded; the diy mode needs it\n`);
    }
  }

  async leftovers(): Promise<Leftovers> {
    const channels = Number(/(\d+) active channels?/.exec(await this.cli('core show channels count'))?.[1] ?? NaN);
    // "bridge show all": a header line, then one line per bridge starting with its id.
    const lines = (await this.cli('bridge show all')).split('\n').filter((l) => l.trim() !== '');
    const bridges = lines.filter((l) => !l.startsWith('Bridge-ID')).length;
    return { channels, bridges };
  }

  queueWatch(): Promise<QueueWatch> {
    return StasisQueueWatch.start((c) => this.cli(c), this.o.app);
  }

  close(): void {}
}

/**
 * Polls `core show taskprocessors like stasis/m:ari:application/<app>` every 200 ms. Columns:
 * Processor, Processed, In Queue, Max Depth, Low water, High water, Low time(us), High time(us).
 * The queue's stats are reset first, so "Max Depth" is this run's; "In Queue" is kept too in case
 * the reset did not find the queue (it appears when the product registers the app).
 */
class StasisQueueWatch implements QueueWatch {
  private max: number | undefined;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private readonly prefix: string;

  private constructor(private readonly cli: (command: string) => Promise<string>, app: string) {
    this.prefix = `stasis/m:ari:application/${app}`;
  }

  static async start(cli: (command: string) => Promise<string>, app: string): Promise<StasisQueueWatch> {
    const watch = new StasisQueueWatch(cli, app);
    const rows = watch.rows(await cli(`core show taskprocessors like ${watch.prefix}`));
    for (const row of rows) await cli(`core reset taskprocessor ${row.name}`);
    watch.done = watch.loop();
    return watch;
  }

  /** Task processor names end in -<8 hex digits>; "twin-dialer-…" apps must not match "twin". */
  private rows(text: string): { name: string; inQueue: number; maxDepth: number }[] {
    const own = new RegExp(`^${this.prefix.replace(/[/.]/g, '\\$&')}-[0-9a-f]{8}$`);
    return text.split('\n').map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 4 && own.test(f[0]!))
      .map((f) => ({ name: f[0]!, inQueue: Number(f[2]), maxDepth: Number(f[3]) }));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      this.record(await this.cli(`core show taskprocessors like ${this.prefix}`).catch(() => ''));
      await sleep(Math.max(0, 200 - (Date.now() - started)));
    }
    this.record(await this.cli(`core show taskprocessors like ${this.prefix}`).catch(() => ''));
  }

  private record(text: string): void {
    for (const row of this.rows(text)) this.max = Math.max(this.max ?? 0, row.inQueue, row.maxDepth);
  }

  async stop(): Promise<number | undefined> {
    this.stopped = true;
    await this.done;
    return this.max;
  }
}

class FreeswitchControl implements PbxControl {
  readonly kind = 'freeswitch';
  private constructor(private readonly esl: EslClient) {}

  static async connect(o: Options): Promise<FreeswitchControl> {
    const esl = await EslClient.connect(o.eslHost, o.eslPort, o.eslPassword)
      .catch((err: Error) => { throw new Error(`FreeSWITCH ESL at ${o.eslHost}:${o.eslPort}: ${err.message}`); });
    return new FreeswitchControl(esl);
  }

  async prepare(g: BenchGlobals, extensions: string[]): Promise<void> {
    const reload = await this.esl.api('reloadxml');
    if (!reload.includes('+OK')) throw new Error(`reloadxml: ${reload.trim()}`);
    await this.esl.api(`global_setvar twin_bench_socket=${g.productSocket}`);
    const dialplan = await this.esl.api('xml_locate dialplan');
    for (const exten of extensions) {
      if (!dialplan.includes(`^${exten}$`)) {
        throw new Error(`extension ${exten} is not in the FreeSWITCH dialplan: put dialplan/freeswitch/bench-dialplan.xml in the caller's context (see bench/real-pbx/README.md)`);
      }
    }
  }

  async leftovers(): Promise<Leftovers> {
    return { channels: Number(/(\d+) total/.exec(await this.esl.api('show channels count'))?.[1] ?? NaN) };
  }

  close(): void {
    this.esl.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
