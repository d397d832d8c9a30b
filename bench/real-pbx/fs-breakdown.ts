/**
 * Where a FreeSWITCH call's set-up time goes, step by step, from a capture of a `run.js` run
 * (kernel timestamps on `lo`): the caller's 200 OK, FreeSWITCH's `socket` connecting to the
 * product, `connect` and its channel data, the warm-up's round trip to the Twin stand-in, the
 * hand-back and its +OK, the socket's close, and the bot's INVITE. Not run in CI.
 *
 *   tcpdump -i lo -s 0 -w /tmp/fs.pcap 'udp port 5090 or udp port 5072 or tcp port 8084 or tcp port 47001' &
 *   node dist/bench/real-pbx/run.js --pbx freeswitch --rates 10 --duration-s 10 --modes default --twin-port 47001
 *   kill %1; node dist/bench/real-pbx/fs-breakdown.js /tmp/fs.pcap --twin-port 47001
 */
import { parseArgs } from 'node:util';
import { parseSip, readPcap, type SipMessage, type UdpPacket } from './capture.js';

const STEPS = [
  ['answer', 'syn', 'FreeSWITCH: 200 OK to the caller → socket connects to the product'],
  ['syn', 'connect', 'product: accepts → sends connect'],
  ['connect', 'reply', 'FreeSWITCH: connect → channel data'],
  ['reply', 'warmupSent', 'product: channel data → warm-up request'],
  ['warmupSent', 'warmupAnswered', 'Twin stand-in round trip'],
  ['warmupAnswered', 'handBack', 'product: warm-up answer → hand-back'],
  ['handBack', 'handBackOk', 'FreeSWITCH: hand-back → +OK'],
  ['handBackOk', 'botInvite', 'FreeSWITCH: +OK → the bot\'s INVITE (socket returns, bridge)'],
  ['answer', 'botInvite', 'in all'],
] as const;
type Mark = (typeof STEPS)[number][0] | (typeof STEPS)[number][1];

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'sip-port': { type: 'string', default: '5090' }, 'bot-port': { type: 'string', default: '5072' }, 'product-port': { type: 'string', default: '8084' }, 'twin-port': { type: 'string' } },
  });
  const file = positionals[0];
  if (!file || !values['twin-port']) throw new Error('usage: fs-breakdown <pcap> --twin-port N [--sip-port 5090 --bot-port 5072 --product-port 8084]');
  const ports = { sip: Number(values['sip-port']), bot: Number(values['bot-port']), product: Number(values['product-port']), twin: Number(values['twin-port']) };
  const calls = callMarks(readPcap(file, 'udp'), readPcap(file, 'tcp'), ports);
  console.log(`${calls.length} calls with every step`);
  for (const [from, to, what] of STEPS) {
    const ms = calls.map((c) => c[to]! - c[from]!).sort((a, b) => a - b);
    console.log(`fs-breakdown step=${from}->${to} p50_ms=${pct(ms, 0.5)} p90_ms=${pct(ms, 0.9)}  # ${what}`);
  }
}

/** Each call's moments, joined by SIP Call-ID (channel data), the Twin id (warm-up answer, hand-back, bot INVITE). */
function callMarks(udp: UdpPacket[], tcp: UdpPacket[], ports: { sip: number; bot: number; product: number; twin: number }): Partial<Record<Mark, number>>[] {
  const byCallId = new Map<string, Partial<Record<Mark, number>>>();
  const botInviteByTwinId = new Map<string, number>();
  for (const m of udp.map(parseSip).filter((s): s is SipMessage => s !== undefined)) {
    if (m.srcPort === ports.sip && m.dstPort !== ports.bot && m.status === 200 && m.cseqMethod === 'INVITE' && !byCallId.has(m.callId)) byCallId.set(m.callId, { answer: m.t });
    if (m.dstPort === ports.bot && m.method === 'INVITE' && m.twinId) botInviteByTwinId.set(m.twinId, m.t);
  }
  const sockets = new Map<number, Partial<Record<Mark, number>> & { callId?: string; twinId?: string }>();
  const warmupSent = new Map<string, number>(); // our call id → request time
  const warmupAnswered = new Map<string, { t: number; callId: string }>(); // Twin id → answer
  for (const p of tcp) {
    const text = p.payload.toString('latin1');
    if (p.dstPort === ports.product && p.tcpFlags === 0x02) sockets.set(p.srcPort, { syn: p.t });
    const socket = sockets.get(p.dstPort === ports.product ? p.srcPort : p.srcPort === ports.product ? p.dstPort : -1);
    if (socket && text) {
      if (p.srcPort === ports.product && text.startsWith('connect')) socket.connect ??= p.t;
      if (p.srcPort === ports.product && text.includes('X-TWIN-CallId=')) {
        socket.handBack ??= p.t;
        socket.twinId = /X-TWIN-CallId=([^,}]+)/.exec(text)?.[1];
      }
      if (p.dstPort === ports.product && socket.reply === undefined && text.includes('variable_sip_call_id: ')) {
        socket.reply = p.t;
        socket.callId = decodeURIComponent(/variable_sip_call_id: (\S+)/.exec(text)![1]!);
      } else if (p.dstPort === ports.product && socket.handBack !== undefined && text.includes('Reply-Text: +OK')) socket.handBackOk ??= p.t;
    }
    if (p.dstPort === ports.twin) for (const [, id] of text.matchAll(/"callId":"([^"]+)"/g)) warmupSent.set(id!, p.t);
    if (p.srcPort === ports.twin) for (const [, ours, twinId] of text.matchAll(/"([0-9a-f-]{36})":"([^"]+)"/g)) warmupAnswered.set(twinId!, { t: p.t, callId: ours! });
  }
  const complete: Partial<Record<Mark, number>>[] = [];
  for (const socket of sockets.values()) {
    const call = socket.callId === undefined ? undefined : byCallId.get(socket.callId);
    const answer = socket.twinId === undefined ? undefined : warmupAnswered.get(socket.twinId);
    if (!call || !answer) continue;
    const marks = { ...call, ...socket, warmupSent: warmupSent.get(answer.callId), warmupAnswered: answer.t, botInvite: botInviteByTwinId.get(socket.twinId!) };
    if (STEPS.every(([from, to]) => marks[from] !== undefined && marks[to] !== undefined)) complete.push(marks);
  }
  return complete;
}

function pct(sorted: number[], q: number): string {
  return sorted.length === 0 ? 'na' : String(Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]! * 100) / 100);
}

main();
