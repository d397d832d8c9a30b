/** A customer's webhook receiver on loopback: records every POST and answers what the test says. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { closeServer, listen, readBody } from '../src/sim/http-util.js';

export interface ReceivedCallback {
  id: string | undefined;
  body: Record<string, unknown>;
}

export class CustomerServer {
  readonly received: ReceivedCallback[] = [];
  /** Every POST, answered 2xx or not. */
  attempts = 0;
  /** Status to answer; change it to make the customer fail or recover. */
  status = 200;
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => void this.handle(req).then((status) => { res.writeHead(status); res.end(); }));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/twin-results`;
  }

  async start(): Promise<void> {
    this.port = await listen(this.server, 0);
  }

  stop(): Promise<void> {
    return closeServer(this.server);
  }

  /** Distinct callbacks the customer accepted (2xx), by our id header. */
  accepted(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.received) if (r.id) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
    return counts;
  }

  private async handle(req: IncomingMessage): Promise<number> {
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    const status = this.status;
    this.attempts += 1;
    if (status >= 200 && status < 300) this.received.push({ id: req.headers['x-twin-connector-callback-id'] as string | undefined, body });
    return status;
  }
}
