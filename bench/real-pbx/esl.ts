/**
 * The smallest inbound event-socket client the benchmark needs: log in, then `api` commands one
 * at a time (no events are subscribed, so every message is a reply).
 */
import { connect, type Socket } from 'node:net';

interface EslMessage {
  headers: Record<string, string>;
  body: string;
}

export class EslClient {
  private buffer = Buffer.alloc(0);
  private readonly waiting: ((m: EslMessage) => void)[] = [];
  private readonly queued: EslMessage[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  static async connect(host: string, port: number, password: string): Promise<EslClient> {
    const socket = connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    const client = new EslClient(socket);
    const greeting = await client.next();
    if (greeting.headers['Content-Type'] !== 'auth/request') throw new Error(`ESL ${host}:${port}: no auth request`);
    const reply = await client.send(`auth ${password}`);
    if (!reply.headers['Reply-Text']?.startsWith('+OK')) throw new Error(`ESL ${host}:${port} refused the password`);
    return client;
  }

  /** Runs an API command and returns its text. */
  async api(command: string): Promise<string> {
    return (await this.send(`api ${command}`)).body;
  }

  close(): void {
    this.socket.destroy();
  }

  private send(line: string): Promise<EslMessage> {
    this.socket.write(`${line}\n\n`);
    return this.next();
  }

  private next(): Promise<EslMessage> {
    const ready = this.queued.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (let m = this.parseOne(); m; m = this.parseOne()) {
      const waiter = this.waiting.shift();
      if (waiter) waiter(m);
      else this.queued.push(m);
    }
  }

  /** One message off the buffer: headers, a blank line, then Content-Length bytes of body. */
  private parseOne(): EslMessage | undefined {
    const end = this.buffer.indexOf('\n\n');
    if (end < 0) return undefined;
    const headers: Record<string, string> = {};
    for (const line of this.buffer.subarray(0, end).toString('utf8').split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const length = Number(headers['Content-Length'] ?? 0);
    if (this.buffer.length < end + 2 + length) return undefined;
    const body = this.buffer.subarray(end + 2, end + 2 + length).toString('utf8');
    this.buffer = this.buffer.subarray(end + 2 + length);
    return { headers, body };
  }
}
