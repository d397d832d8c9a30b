/**
 * SIPp as the caller (UAC, one number per call from an injection file) and as the bot (UAS that
 * answers at once and waits for the BYE). Scenarios are written to the run directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Bot: 100 + 200 at once, ACK, then the PBX's BYE whenever the caller hangs up. With `hangUpAfterMs`
 * the bot hangs up itself that long after the ACK, unless the PBX's BYE came first (faults.ts: the
 * bot ends each call, so a caller left without bot or fallback shows as still up).
 */
export function botScenario(hangUpAfterMs?: number): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="twin-bench bot">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="peer_from"/>
      <ereg regexp="sips?:[-A-Za-z0-9_.!~*'()%+=$,;?/@:]*[-A-Za-z0-9_.+%@:]" search_in="hdr" header="Contact:" check_it="true" assign_to="peer_contact"/>
    </action>
  </recv>
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
${ok200()}
  <!-- A retransmitted INVITE (the PBX missed our 200 under load): SIPp would abort the call; send the 200 again. -->
  <recv request="INVITE" optional="true" next="4"/>
  <recv request="ACK" crlf="true" next="5"/>
  <label id="4"/>
${ok200()}
  <recv request="INVITE" optional="true" next="4"/>
  <recv request="ACK" crlf="true"/>
  <label id="5"/>
  <recv request="BYE" timeout="${hangUpAfterMs ?? 600000}"${hangUpAfterMs !== undefined ? ' ontimeout="1"' : ''}/>
${answerBye('2')}
  <label id="1"/>
  <send retrans="500">
    <![CDATA[
      BYE [$peer_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:twinbot@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To:[$peer_from]
      Call-ID: [call_id]
      CSeq: 101 BYE
      Contact: <sip:twinbot@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" timeout="10000"/>
  <label id="2"/>
</scenario>
`;
}

/** The bot's 200 OK again, for a retransmitted INVITE. */
function ok200(): string {
  return `  <send>
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
  </send>`;
}

/** 200 OK to the peer's BYE, then on to `next`. */
function answerBye(next: string): string {
  return `  <send next="${next}">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>`;
}

/**
 * Caller: INVITE from the call's own number ([field0]), 200 within 10 s, hold (-d), BYE. A BYE from
 * the PBX during the hold is unexpected, so SIPp answers it and counts the call as failed.
 * With `waitForPbxByeMs` (faults.ts) the caller instead stays until the PBX hangs it up (the bot
 * or the fallback ended the call), and hangs up itself only after that long.
 */
export function callerScenario(extraHeaders: string[], waitForPbxByeMs?: number): string {
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
${waitForPbxByeMs === undefined ? '  <pause/>' : `  <recv request="BYE" timeout="${waitForPbxByeMs}" ontimeout="1"/>
${answerBye('2')}
  <label id="1"/>`}
  <send retrans="500">
    <![CDATA[
${dialog('BYE', '2 BYE')}      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" timeout="10000"/>
${waitForPbxByeMs === undefined ? '' : '  <label id="2"/>\n'}</scenario>
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

/** `name`: the files' name in `dir` (bot.xml, bot.stderr); `hangUpAfterMs`: see botScenario. */
export async function startBot(dir: string, host: string, port: number, mediaPort: number, opts: { name?: string; hangUpAfterMs?: number } = {}): Promise<BotProcess> {
  const name = opts.name ?? 'bot';
  const scenario = join(dir, `${name}.xml`);
  writeFileSync(scenario, botScenario(opts.hangUpAfterMs));
  const args = ['-sf', scenario, '-i', host, '-p', String(port), '-mp', String(mediaPort), '-t', 'u1',
    '-aa', '-nostdin', '-max_socket', '10000', '-watchdog_minor_threshold', '5000', '-watchdog_major_threshold', '60000'];
  const child = spawnSipp(args, join(dir, `${name}.stderr`));
  // SIPp has bound its port or died within this time.
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (child.exitCode !== null) throw new Error(`SIPp ${name} on ${host}:${port} exited: ${readTail(join(dir, `${name}.stderr`))}`);
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
  /** Instead of holding holdMs: wait this long for the PBX's BYE (callerScenario). */
  waitForPbxByeMs?: number;
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
  writeFileSync(`${base}.caller.xml`, callerScenario(r.extraHeaders, r.waitForPbxByeMs));
  writeNumbers(`${base}.numbers.csv`, r.numbers);
  const calls = r.numbers.length;
  const spreadS = calls / r.rate;
  // Enough room for every call of the run at once; a global timeout so a stuck PBX ends the run.
  const heldMs = r.waitForPbxByeMs ?? r.holdMs;
  const limit = Math.ceil(r.rate * (heldMs / 1000 + 12)) + 50;
  const timeoutS = Math.ceil(spreadS + heldMs / 1000 + 60);
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
