/**
 * SIPp as the caller (UAC, one number per call from an injection file) and as the bot (UAS that
 * answers at once and waits for the BYE). Scenarios are written to the run directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bot: 100 + 200 at once, ACK, then the PBX's BYE whenever the caller hangs up. */
export function botScenario(): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="twin-bench bot">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:twinbot@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

${sdp('bot')}
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="600000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
`;
}

/**
 * Caller: INVITE from the call's own number ([field0]), 200 within 10 s, hold (-d), BYE. A BYE from
 * the PBX during the hold is unexpected, so SIPp answers it and counts the call as failed.
 */
export function callerScenario(extraHeaders: string[]): string {
  const extra = extraHeaders.map((h) => `      ${h}\n`).join('');
  const dialog = (method: string, cseq: string) => `      ${method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>${method === 'INVITE' ? '' : '[peer_tag_param]'}
      Call-ID: [call_id]
      CSeq: ${cseq}
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
`;
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="twin-bench caller">
  <send retrans="500">
    <![CDATA[
${dialog('INVITE', '1 INVITE')}${extra}      Content-Type: application/sdp
      Content-Length: [len]

${sdp('caller')}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" timeout="10000"/>
  <send>
    <![CDATA[
${dialog('ACK', '1 ACK')}      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
${dialog('BYE', '2 BYE')}      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" timeout="10000"/>
</scenario>
`;
}

/** One PCMU stream; nobody sends RTP (no pcap play, no echo), so media costs the PBX little. */
function sdp(owner: string): string {
  return `      v=0
      o=${owner} 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000`;
}

/** The injection file: one caller number per call, used in order. */
export function writeNumbers(file: string, numbers: string[]): void {
  writeFileSync(file, `SEQUENTIAL\n${numbers.map((n) => `${n};`).join('\n')}\n`);
}

export interface BotProcess {
  stop(): Promise<void>;
}

export async function startBot(dir: string, host: string, port: number, mediaPort: number): Promise<BotProcess> {
  const scenario = join(dir, 'bot.xml');
  writeFileSync(scenario, botScenario());
  const args = ['-sf', scenario, '-i', host, '-p', String(port), '-mp', String(mediaPort), '-t', 'u1',
    '-aa', '-nostdin', '-max_socket', '10000', '-watchdog_minor_threshold', '5000', '-watchdog_major_threshold', '60000'];
  const child = spawnSipp(args, join(dir, 'bot.stderr'));
  // SIPp has bound its port or died within this time.
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (child.exitCode !== null) throw new Error(`SIPp bot on ${host}:${port} exited: ${readTail(join(dir, 'bot.stderr'))}`);
  return {
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface CallerRun {
  pbxHost: string;
  pbxPort: number;
  host: string;
  port: number;
  mediaPort: number;
  extension: string;
  numbers: string[];
  rate: number;
  holdMs: number;
  extraHeaders: string[];
  /** Files are named <dir>/<name>.* */
  dir: string;
  name: string;
}

export interface CallerResult {
  exitCode: number | null;
  successful: number;
  failed: number;
}

export async function runCaller(r: CallerRun): Promise<CallerResult> {
  const base = join(r.dir, r.name);
  writeFileSync(`${base}.caller.xml`, callerScenario(r.extraHeaders));
  writeNumbers(`${base}.numbers.csv`, r.numbers);
  const calls = r.numbers.length;
  const spreadS = calls / r.rate;
  // Enough room for every call of the run at once; a global timeout so a stuck PBX ends the run.
  const limit = Math.ceil(r.rate * (r.holdMs / 1000 + 12)) + 50;
  const timeoutS = Math.ceil(spreadS + r.holdMs / 1000 + 60);
  const args = [`${r.pbxHost}:${r.pbxPort}`, '-sf', `${base}.caller.xml`, '-inf', `${base}.numbers.csv`, '-s', r.extension,
    '-i', r.host, '-p', String(r.port), '-mp', String(r.mediaPort), '-t', 'u1',
    '-r', String(r.rate), '-rp', '1000', '-m', String(calls), '-l', String(limit), '-d', String(r.holdMs),
    '-timeout', `${timeoutS}s`, '-max_socket', '10000', '-nostdin',
    '-trace_stat', '-stf', `${base}.stat.csv`, '-fd', '1',
    '-watchdog_minor_threshold', '5000', '-watchdog_major_threshold', '60000'];
  const child = spawnSipp(args, `${base}.caller.stderr`);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { exitCode, ...readStats(`${base}.stat.csv`) };
}

function spawnSipp(args: string[], stderrFile: string): ChildProcess {
  writeFileSync(stderrFile, '');
  const child = spawn('sipp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (c: Buffer) => writeFileSync(stderrFile, c, { flag: 'a' }));
  child.on('error', (err) => writeFileSync(stderrFile, `spawn sipp: ${err.message} (apt-get install sip-tester)\n`, { flag: 'a' }));
  return child;
}

/** Last line of SIPp's statistics CSV (';'-separated, header first): cumulative successful/failed calls. */
function readStats(file: string): { successful: number; failed: number } {
  if (!existsSync(file)) return { successful: NaN, failed: NaN };
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const header = (lines[0] ?? '').split(';');
  const last = (lines[lines.length - 1] ?? '').split(';');
  const col = (name: string) => Number(last[header.indexOf(name)] ?? NaN);
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') };
}

export function readTail(file: string, chars = 800): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars).trim();
  } catch {
    return '';
  }
}
