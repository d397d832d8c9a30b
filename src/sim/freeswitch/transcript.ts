/**
 * ESL transcripts: a scripted stand-in for the product plays one call's commands against a
 * FreeSWITCH — the real one (bench/real-pbx/esl-probe.ts, which records the fixtures in
 * test/fixtures/freeswitch/) or the simulator (test/freeswitch-fixtures.test.ts, which replays them)
 * — and writes down, per connection, what came back, in a form that leaves out what differs from
 * run to run (uuids, times, sizes): reply texts, event names with the variables the product reads,
 * notices, the socket's end.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * One step of the stand-in's script. `${uuid}` is the call's uuid, `${dial}` the bot's dial string
 * escaped for uuid_setvar_multi, `${dialRaw}` as a sendmsg argument.
 */
export type ScriptStep =
  /** A command on the call socket (api, sendmsg with header lines after `\n`, myevents …); not waited for. */
  | { send: string }
  /** `sendmsg` execute with the app's argument as a text/plain body (Content-Length computed). */
  | { sendmsg: { app: string; body: string } }
  /** Half-close the call socket. */
  | { close: true }
  /** An api command on the inbound connection; its reply is waited for. */
  | { inbound: string }
  /** Wait until the transcript of `conn` has a line starting with `line`. */
  | { until: { conn: 'socket' | 'inbound'; line: string } }
  /** Tell the scenario to act (the caller hangs up, …). */
  | { act: string };

export interface ProbeScript {
  /** Commands sent as the call socket's first ones (connect is implied). */
  steps: ScriptStep[];
  /** `filter` lines for the inbound connection (as the product sends them). */
  inboundFilters: string[];
  /** The inbound connection's `event json …` line. */
  inboundEvents: string;
  /** false: the caller is gone before the dialplan's `socket` runs; only the inbound connection is recorded. */
  socket?: false;
}

export interface Transcript {
  socket: string[];
  inbound: string[];
}

/** Variables the product reads from events, in this order. */
const KEPT_VARIABLES = [
  'twin_next_step', 'socket_host', 'TWIN_STATUS', 'originate_disposition', 'DIALSTATUS', 'last_bridge_proto_specific_hangup_cause',
];

interface Message {
  headers: Record<string, string>;
  body: string;
}

/** Splits ESL bytes into header blocks with their Content-Length bodies. */
class Framer {
  private buffer = Buffer.alloc(0);
  constructor(private readonly onMessage: (m: Message) => void) {}

  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end < 0) return;
      const headers: Record<string, string> = {};
      for (const line of this.buffer.subarray(0, end).toString('latin1').split('\n')) {
        const colon = line.indexOf(': ');
        if (colon > 0) headers[line.slice(0, colon)] = line.slice(colon + 2);
      }
      const length = Number(headers['Content-Length'] ?? 0);
      if (this.buffer.length < end + 2 + length) return;
      const body = this.buffer.subarray(end + 2, end + 2 + length).toString('utf8');
      this.buffer = this.buffer.subarray(end + 2 + length);
      this.onMessage({ headers, body });
    }
  }
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** One line for a message: what a reader of this call would act on. */
export function describeMessage(m: Message): string | undefined {
  const type = m.headers['Content-Type'];
  if (type === 'command/reply') {
    if (m.headers['Event-Name'] === 'CHANNEL_DATA') return `connect reply Socket-Mode=${m.headers['Socket-Mode']} Control=${m.headers['Control']}`;
    return `reply ${decode(m.headers['Reply-Text'] ?? '')}`;
  }
  if (type === 'api/response') return `api ${m.body.split('\n')[0]!.trim()}`;
  if (type === 'text/disconnect-notice') return `notice ${m.headers['Content-Disposition'] ?? ''}`.trim();
  if (type === 'text/event-json' || type === 'text/event-plain') {
    const event = type === 'text/event-json'
      ? JSON.parse(m.body) as Record<string, string>
      : Object.fromEntries(m.body.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(': ')), decode(l.slice(l.indexOf(': ') + 2))]));
    const name = event['Event-Name'] ?? '';
    const parts = [`event ${name}`];
    if (event['Event-Subclass']) parts.push(event['Event-Subclass']);
    if (event.Application) parts.push(`app=${event.Application}`);
    for (const variable of KEPT_VARIABLES) {
      const value = event[`variable_${variable}`];
      if (value !== undefined) parts.push(`${variable}=${value}`);
    }
    return parts.join(' ');
  }
  if (type === 'auth/request') return undefined;
  return `other ${type ?? '(none)'}`;
}

export interface RecordOptions {
  eslHost: string;
  eslPort: number;
  eslPassword: string;
  /** Where the call socket listens (the dialplan's `socket` target). */
  listenPort: number;
  script: ProbeScript;
  dial: string;
  /** Places the call (spawns the caller, or asks the simulator) once the stand-in listens on `port`. */
  placeCall: (port: number) => void;
  /** Carries out an `act` step. */
  act: (what: string) => void;
  /** How long to keep listening after the last step (to see the end). */
  tailMs: number;
}

/** Plays the script for one call and returns both connections' transcripts. */
export async function recordTranscript(o: RecordOptions): Promise<Transcript> {
  const transcript: Transcript = { socket: [], inbound: [] };
  const waiters: (() => void)[] = [];
  const note = (conn: keyof Transcript, line: string | undefined) => {
    if (line === undefined) return;
    transcript[conn].push(line);
    for (const wake of waiters.splice(0)) wake();
  };
  const until = (conn: keyof Transcript, prefix: string) => new Promise<void>((resolve) => {
    const check = () => (transcript[conn].some((l) => l.startsWith(prefix)) ? resolve() : waiters.push(check));
    check();
  });

  const inbound = await openInbound(o, (m) => {
    if (m.headers['Content-Type']?.startsWith('text/event')) note('inbound', describeMessage(m));
  });
  let server: Server | undefined;
  try {
    if (o.script.socket === false) {
      o.placeCall(0);
      await new Promise((resolve) => setTimeout(resolve, o.tailMs));
      return transcript;
    }
    const socket = await new Promise<Socket>((resolve, reject) => {
      server = createServer({ allowHalfOpen: true }, resolve);
      server.once('error', reject);
      server.listen(o.listenPort, '127.0.0.1', () => o.placeCall((server!.address() as { port: number }).port));
    });
    socket.setNoDelay(true);
    let uuid = '';
    const framer = new Framer((m) => {
      if (m.headers['Event-Name'] === 'CHANNEL_DATA') uuid = m.headers['Unique-ID'] ?? '';
      note('socket', describeMessage(m));
    });
    socket.on('data', (chunk: Buffer) => framer.push(chunk));
    socket.on('end', () => note('socket', 'closed'));
    socket.on('error', () => {});
    socket.write('connect\n\n');
    await until('socket', 'connect reply');
    const raw = o.dial.replace(/\\(.)/g, '$1');
    const fill = (text: string) => text.replaceAll('${uuid}', uuid).replaceAll('${dialRaw}', raw).replaceAll('${dial}', o.dial);
    for (const step of o.script.steps) {
      if ('send' in step) socket.write(`${fill(step.send)}\n\n`);
      else if ('sendmsg' in step) {
        const body = fill(step.sendmsg.body);
        socket.write(`sendmsg\ncall-command: execute\nexecute-app-name: ${step.sendmsg.app}\ncontent-type: text/plain\n`
          + `content-length: ${Buffer.byteLength(body)}\n\n${body}`);
      }
      else if ('close' in step) socket.end();
      else if ('inbound' in step) await inbound.api(fill(step.inbound));
      else if ('until' in step) await until(step.until.conn, step.until.line);
      else o.act(step.act);
    }
    await new Promise((resolve) => setTimeout(resolve, o.tailMs));
    socket.destroy();
  } finally {
    inbound.close();
    server?.close();
  }
  return transcript;
}

interface InboundConnection {
  api(command: string): Promise<string>;
  close(): void;
}

/** The inbound connection, subscribed as the script says; every event goes to `onEvent`. */
async function openInbound(o: RecordOptions, onEvent: (m: Message) => void): Promise<InboundConnection> {
  const socket = connect(o.eslPort, o.eslHost);
  socket.setNoDelay(true);
  const replies: ((m: Message) => void)[] = [];
  const framer = new Framer((m) => {
    const type = m.headers['Content-Type'];
    if (type === 'command/reply' || type === 'api/response') replies.shift()?.(m);
    else onEvent(m);
  });
  socket.on('data', (chunk: Buffer) => framer.push(chunk));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const send = (command: string) => new Promise<Message>((resolve) => {
    replies.push(resolve);
    socket.write(`${command}\n\n`);
  });
  await send(`auth ${o.eslPassword}`);
  for (const filter of o.script.inboundFilters) await send(`filter ${filter}`);
  await send(`event json ${o.script.inboundEvents}`);
  return { api: async (command) => (await send(`api ${command}`)).body, close: () => socket.destroy() };
}
