/**
 * SIP timestamps from a tcpdump capture (kernel timestamps, and cheaper for the PBX than SIPp's
 * message traces): start/stop tcpdump, read the pcap file, pick out SIP messages (and TCP
 * segments, for bench/http-capture.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Capture {
  /** Stops tcpdump (it writes the rest of its buffer) and says how many packets the kernel dropped. */
  stop(): Promise<{ dropped: number }>;
}

/**
 * SIP on `port`, and with `rtpToPort` the RTP sent to that port (the callers' media: did they hear
 * a ringback while waiting?).
 */
export function startCapture(file: string, iface: string, port: number, rtpToPort?: number): Promise<Capture> {
  const filter = rtpToPort === undefined ? ['udp', 'port', String(port)] : ['udp', 'and', '(', 'port', String(port), 'or', 'dst', 'port', String(rtpToPort), ')'];
  return startTcpdump(file, iface, filter);
}

/** tcpdump writing `file` with a capture filter given as words (e.g. ['tcp', 'port', '80']). */
export async function startTcpdump(file: string, iface: string, filter: string[]): Promise<Capture> {
  // -B: a bigger kernel buffer so bursts are not dropped; -s 0: whole packets (SIP INVITEs are ~1 kB).
  const child = spawn('tcpdump', ['-i', iface, '-n', '-s', '0', '-B', '32768', '-w', file, ...filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  await waitListening(child, () => stderr);
  return {
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await exited;
      return { dropped: Number(/(\d+) packets? dropped by kernel/.exec(stderr)?.[1] ?? 0) };
    },
  };
}

/** tcpdump says "listening on <iface>" once the capture runs. */
function waitListening(child: ChildProcess, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (stderr().includes('listening on')) done(resolve);
    }, 20);
    const done = (f: () => void) => { clearInterval(timer); f(); };
    child.once('exit', (code) => done(() => reject(new Error(`tcpdump exited (${code}): ${stderr().trim()}`))));
    child.once('error', (err) => done(() => reject(new Error(`tcpdump: ${err.message} (install tcpdump, run as root)`))));
  });
}

export interface UdpPacket {
  /** Capture time, ms since the epoch (µs or ns precision). */
  t: number;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
  /** TCP only: the segment's flags (0x01 FIN, 0x02 SYN, 0x10 ACK). */
  tcpFlags?: number;
}

/** Classic pcap (not pcapng): global header, then per packet a 16-byte record header and the frame. */
export function readPcap(file: string, protocol: 'udp' | 'tcp' = 'udp'): UdpPacket[] {
  const buf = readFileSync(file);
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
  if (!le && magic !== 0xd4c3b2a1 && magic !== 0x4d3cb2a1) throw new Error(`${file}: not a pcap file (pcapng is not read)`);
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const linkType = u32(20);
  const packets: UdpPacket[] = [];
  for (let at = 24; at + 16 <= buf.length;) {
    const t = u32(at) * 1000 + u32(at + 4) / (nano ? 1e6 : 1e3);
    const caplen = u32(at + 8);
    const frame = buf.subarray(at + 16, at + 16 + caplen);
    at += 16 + caplen;
    const packet = transportOf(frame, linkType, protocol);
    if (packet) packets.push({ t, ...packet });
  }
  return packets;
}

/** Where the IPv4 header starts for the link types tcpdump uses on Linux. */
function ipOffset(frame: Buffer, linkType: number): number | undefined {
  if (linkType === 1) return frame.readUInt16BE(12) === 0x0800 ? 14 : undefined; // Ethernet (lo too)
  if (linkType === 113) return frame.readUInt16BE(14) === 0x0800 ? 16 : undefined; // Linux cooked (-i any)
  if (linkType === 276) return frame.readUInt16BE(0) === 0x0800 ? 20 : undefined; // Linux cooked v2
  if (linkType === 101) return 0; // raw IP
  return undefined;
}

/**
 * A UDP datagram's or TCP segment's ports and payload (TCP: no reassembly, loopback captures lose
 * nothing and reorder nothing).
 */
function transportOf(frame: Buffer, linkType: number, protocol: 'udp' | 'tcp'): Omit<UdpPacket, 't'> | undefined {
  if (frame.length < 20) return undefined;
  const ip = ipOffset(frame, linkType);
  if (ip === undefined || frame.length < ip + (protocol === 'udp' ? 28 : 40)) return undefined;
  if (frame[ip]! >> 4 !== 4 || frame[ip + 9] !== (protocol === 'udp' ? 17 : 6)) return undefined; // IPv4
  const at = ip + (frame[ip]! & 0x0f) * 4;
  const [payloadAt, end] = protocol === 'udp'
    ? [at + 8, at + frame.readUInt16BE(at + 4)]
    : [at + (frame[at + 12]! >> 4) * 4, ip + frame.readUInt16BE(ip + 2)];
  const payload = frame.subarray(payloadAt, Math.min(frame.length, end));
  const ports = { srcPort: frame.readUInt16BE(at), dstPort: frame.readUInt16BE(at + 2), payload };
  return protocol === 'udp' ? ports : { ...ports, tcpFlags: frame[at + 13] };
}

export interface SipMessage {
  t: number;
  srcPort: number;
  dstPort: number;
  /** Request method, or undefined for a response. */
  method?: string;
  status?: number;
  cseqMethod: string;
  callId: string;
  fromUser: string;
  twinId?: string;
  /** The SDP's audio port (m=audio), when the message has one. */
  audioPort?: number;
}

/** The few SIP fields the benchmark uses (full and compact header names). */
export function parseSip(p: UdpPacket): SipMessage | undefined {
  const text = p.payload.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  const lines = (headEnd >= 0 ? text.slice(0, headEnd) : text).split('\r\n');
  const start = lines[0] ?? '';
  const response = /^SIP\/2\.0 (\d{3})/.exec(start);
  const request = /^([A-Z]+) \S+ SIP\/2\.0$/.exec(start);
  if (!response && !request) return undefined;
  const h = headerMap(lines.slice(1));
  const callId = h.get('call-id') ?? h.get('i');
  const cseq = h.get('cseq');
  if (callId === undefined || cseq === undefined) return undefined;
  return {
    t: p.t, srcPort: p.srcPort, dstPort: p.dstPort,
    method: request?.[1], status: response ? Number(response[1]) : undefined,
    cseqMethod: cseq.split(/\s+/)[1] ?? '',
    callId,
    fromUser: /sips?:([^@;>]+)@/.exec(h.get('from') ?? h.get('f') ?? '')?.[1] ?? '',
    twinId: h.get('x-twin-callid'),
    audioPort: headEnd >= 0 ? Number(/\r\nm=audio (\d+) /.exec(text.slice(headEnd))?.[1]) || undefined : undefined,
  };
}

function headerMap(lines: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (!map.has(name)) map.set(name, line.slice(i + 1).trim());
  }
  return map;
}

/** What the caller's side of a call shows: the first of each, as both analysers read it. */
export interface CallerMoments {
  /** The PBX's first 200 OK to the caller's INVITE. */
  answeredAt?: number;
  /** The first 180 to it (the caller's own phone rings). */
  ringingAt?: number;
  /** The first final error response to it (≥ 300): a caller refused before any answer. */
  refusedAt?: number;
  pbxByeAt?: number;
  callerByeAt?: number;
}

/** Notes `m`, a message of the caller's leg, on `leg` (`toCaller`: sent by the PBX to the caller). */
export function noteCallerMessage(leg: CallerMoments, m: SipMessage, toCaller: boolean): void {
  const toInvite = toCaller && m.cseqMethod === 'INVITE' && m.status !== undefined;
  if (toInvite && m.status === 200) leg.answeredAt ??= m.t;
  else if (toInvite && m.status === 180) leg.ringingAt ??= m.t;
  else if (toInvite && m.status! >= 300) leg.refusedAt ??= m.t;
  else if (m.method === 'BYE' && toCaller) leg.pbxByeAt ??= m.t;
  else if (m.method === 'BYE') leg.callerByeAt ??= m.t;
}

/** The caller's number from a SIP URI's user part (percent-decoded when it can be). */
export function sipUserNumber(user: string): string {
  try {
    return decodeURIComponent(user);
  } catch {
    return user;
  }
}
