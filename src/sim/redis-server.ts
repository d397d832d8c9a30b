/**
 * A real redis-server (Debian's package) for the cluster tests and the benchmark: on a free
 * loopback port, without persistence. A missing binary is an error naming the fix, never a skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './http-util.js';

export class RedisServer {
  port = 0;
  private process?: ChildProcess;

  /** `password`: Redis asks for it (requirepass), as a production one should. */
  constructor(readonly password?: string) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts on a free port, or again on the same port after stop() (Redis back after an outage). */
  async start(): Promise<void> {
    if (spawnSync('redis-server', ['--version']).error) {
      throw new Error('redis-server is not installed: the cluster tests need a real Redis (apt-get install -y redis-server)');
    }
    this.port ||= await freePort();
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(this.password ? ['--requirepass', this.password] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes('Ready to accept connections')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output.slice(-500)}`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    this.process = undefined;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL'); // as when the Redis host dies: no goodbye to the clients
    });
  }

}
