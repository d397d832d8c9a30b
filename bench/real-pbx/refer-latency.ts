/**
 * From a tcpdump capture of a transfer run (bench/real-pbx/sipp/fs-*.xml): per call, the time from
 * the bot's REFER to the operator's INVITE, matched through the caller's number (the bot leg's and
 * the operator leg's From user, as the lab's gateways send it: caller-id-in-from).
 *   node dist/bench/real-pbx/refer-latency.js <file.pcap> [bot port 5072] [operator port 5087]
 */
import { parseSip, readPcap, type SipMessage } from './capture.js';

export function referLatencies(messages: SipMessage[], botPort: number, operatorPort: number): number[] {
  const callerOfBotLeg = new Map<string, string>();
  const referAt = new Map<string, number>();
  const operatorInviteAt = new Map<string, number>();
  for (const m of messages) {
    if (m.method === 'INVITE' && m.dstPort === botPort) callerOfBotLeg.set(m.callId, m.fromUser);
    else if (m.method === 'REFER' && m.srcPort === botPort) {
      const caller = callerOfBotLeg.get(m.callId);
      if (caller !== undefined && !referAt.has(caller)) referAt.set(caller, m.t);
    } else if (m.method === 'INVITE' && m.dstPort === operatorPort && !operatorInviteAt.has(m.fromUser)) {
      operatorInviteAt.set(m.fromUser, m.t);
    }
  }
  return [...referAt].flatMap(([caller, t]) => {
    const invite = operatorInviteAt.get(caller);
    return invite === undefined ? [] : [invite - t];
  }).sort((a, b) => a - b);
}

function main(): void {
  const [file, bot = '5072', operator = '5087'] = process.argv.slice(2);
  if (!file) throw new Error('usage: refer-latency <file.pcap> [bot port] [operator port]');
  const messages = readPcap(file).map(parseSip).filter((m): m is SipMessage => m !== undefined);
  const referred = messages.filter((m) => m.method === 'REFER').length;
  const ms = referLatencies(messages, Number(bot), Number(operator));
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]?.toFixed(1) ?? 'na';
  console.log(`refers=${referred} operator_invites_matched=${ms.length} p50_ms=${at(0.5)} max_ms=${ms.at(-1)?.toFixed(1) ?? 'na'} min_ms=${ms[0]?.toFixed(1) ?? 'na'}`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
