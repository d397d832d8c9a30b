/**
 * HTTP/1.1 messages out of a loopback capture, with the kernel's time of each message's first
 * byte: what a process's own clocks cannot show (time in the socket before it reads, and after it
 * writes). Requests and responses are cut by Content-Length (what Node and undici send for these
 * small bodies; a chunked message ends the stream's parsing, reported).
 */
import { readPcap } from './real-pbx/capture.js';

export interface HttpMessage {
  /** Kernel time of the message's first byte, ms since the epoch. */
  t: number;
  srcPort: number;
  dstPort: number;
  /** Request line or status line. */
  startLine: string;
  body: string;
}

/** Every HTTP message in the capture, per direction of each connection, in order. */
export function readHttpMessages(file: string): { messages: HttpMessage[]; unreadable: number } {
  const streams = new Map<string, { src: number; dst: number; chunks: { t: number; bytes: Buffer }[] }>();
  for (const p of readPcap(file, 'tcp')) {
    if (p.payload.length === 0) continue;
    const key = `${p.srcPort}>${p.dstPort}`;
    let stream = streams.get(key);
    if (!stream) streams.set(key, (stream = { src: p.srcPort, dst: p.dstPort, chunks: [] }));
    stream.chunks.push({ t: p.t, bytes: p.payload });
  }
  const messages: HttpMessage[] = [];
  let unreadable = 0;
  for (const stream of streams.values()) {
    const parsed = parseStream(stream.chunks);
    unreadable += parsed.unreadable;
    for (const m of parsed.messages) messages.push({ ...m, srcPort: stream.src, dstPort: stream.dst });
  }
  return { messages: messages.sort((a, b) => a.t - b.t), unreadable };
}

function parseStream(chunks: { t: number; bytes: Buffer }[]): { messages: Omit<HttpMessage, 'srcPort' | 'dstPort'>[]; unreadable: number } {
  const all = Buffer.concat(chunks.map((c) => c.bytes));
  // Byte offset → kernel time of the segment that carried it.
  const starts: number[] = [];
  let offset = 0;
  for (const c of chunks) { starts.push(offset); offset += c.bytes.length; }
  const timeAt = (at: number) => {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (starts[mid]! <= at) lo = mid; else hi = mid - 1; }
    return chunks[lo]!.t;
  };
  const messages: Omit<HttpMessage, 'srcPort' | 'dstPort'>[] = [];
  for (let at = 0; at < all.length;) {
    const headEnd = all.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return { messages, unreadable: 1 };
    const head = all.subarray(at, headEnd).toString('latin1');
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return { messages, unreadable: 1 };
    const bodyEnd = headEnd + 4 + length;
    messages.push({ t: timeAt(at), startLine: head.split('\r\n', 1)[0]!, body: all.subarray(headEnd + 4, bodyEnd).toString('utf8') });
    at = bodyEnd;
  }
  return { messages, unreadable: 0 };
}

/**
 * Pairs each request with the response that follows it on the same connection (HTTP/1.1 without
 * pipelining: in order), keyed by `keyOf(request)`; requests it gives no key for are skipped.
 */
export function exchanges(messages: HttpMessage[], serverPort: number, keyOf: (request: HttpMessage) => string | undefined): Map<string, { sentAt: number; answeredAt: number }> {
  const pending = new Map<number, (HttpMessage | undefined)[]>(); // client port → requests waiting for their response
  const out = new Map<string, { sentAt: number; answeredAt: number }>();
  for (const m of messages) {
    if (m.dstPort === serverPort && !m.startLine.startsWith('HTTP/')) {
      const queue = pending.get(m.srcPort) ?? [];
      queue.push(m);
      pending.set(m.srcPort, queue);
    } else if (m.srcPort === serverPort && m.startLine.startsWith('HTTP/')) {
      const request = pending.get(m.dstPort)?.shift();
      const key = request ? keyOf(request) : undefined;
      if (request && key !== undefined && !out.has(key)) out.set(key, { sentAt: request.t, answeredAt: m.t });
    }
  }
  return out;
}
