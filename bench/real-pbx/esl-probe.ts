/**
 * Records what a real FreeSWITCH sends for one call played by a scripted stand-in for the product
 * (src/sim/freeswitch/transcript.ts), into test/fixtures/freeswitch/<name>/transcript.json; the
 * simulator must give the same transcript (test/freeswitch-fixtures.test.ts).
 *
 *   node dist/bench/real-pbx/esl-probe.js test/fixtures/freeswitch/h1-hand-back [--port 8089]
 *
 * The fixture directory holds scenario.json: { extension, bot: answer|busy|bye, caller: hold|short,
 * script: { steps, inboundFilters, inboundEvents } }. The call goes through the bench dialplan's
 * extension (7400: the shipped `socket … full` and twin-after-socket), whose socket target
 * twin_bench_socket is pointed at the stand-in. Needs the lab of bench/real-pbx/README.md (SIPp as
 * caller on 5082 and as the bot on 5072, ESL on 8021) and nothing else on those ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordTranscript, type ProbeScript } from '../../src/sim/freeswitch/transcript.js';
import { EslClient } from './esl.js';
import { botScenario } from './sipp.js';

export interface ProbeScenario {
  extension: string;
  bot: 'answer' | 'busy' | 'bye';
  caller: 'hold' | 'short';
  script: ProbeScript;
}

/** The bot's dial string the stand-in hands back (its quotes escaped for uuid_setvar_multi). */
export const PROBE_DIAL = "{sip_h_X-TWIN-CallId=probe-1,sip_h_X-TWIN-EnableRecord=1,origination_caller_id_number=+15550001,"
  + "origination_caller_id_name=\\'Probe Caller\\',originate_timeout=10}sofia/gateway/twin/twinbot";

const SIPP_DIR = fileURLToPath(new URL('../../../bench/real-pbx/sipp/', import.meta.url));

async function main(): Promise<void> {
  const dir = resolve(process.argv[2] ?? '');
  const portAt = process.argv.indexOf('--port');
  const port = portAt > 0 ? Number(process.argv[portAt + 1]) : 8089;
  const scenario = JSON.parse(readFileSync(join(dir, 'scenario.json'), 'utf8')) as ProbeScenario;
  const esl = await EslClient.connect('127.0.0.1', 8021, 'ClueCon');
  await esl.api(`global_setvar twin_bench_socket=127.0.0.1:${port}`);
  const work = mkdtempSync(join(tmpdir(), 'esl-probe-'));
  const botFile = scenario.bot === 'answer' ? join(work, 'bot.xml') : join(SIPP_DIR, `fs-bot-${scenario.bot}.xml`);
  if (scenario.bot === 'answer') writeFileSync(botFile, botScenario());
  const children: ChildProcess[] = [];
  const sipp = (args: string[]) => {
    const child = spawn('sipp', [...args, '-nostdin'], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  sipp(['-sf', botFile, '-i', '127.0.0.1', '-p', '5072', '-mp', '61288', '-m', '1']);
  await new Promise((r) => setTimeout(r, 300));
  const callerFile = join(SIPP_DIR, scenario.caller === 'short' ? 'fs-caller-short.xml' : 'fs-caller.xml');
  let callerDone!: Promise<void>;
  try {
    const transcript = await recordTranscript({
      eslHost: '127.0.0.1', eslPort: 8021, eslPassword: 'ClueCon', listenPort: port, script: scenario.script, dial: PROBE_DIAL,
      placeCall: () => {
        const caller = sipp(['127.0.0.1:5090', '-sf', callerFile, '-s', scenario.extension, '-i', '127.0.0.1', '-p', '5082', '-mp', '61328', '-m', '1']);
        callerDone = new Promise((r) => caller.once('exit', () => r()));
      },
      act: () => { /* the SIPp caller acts on its own schedule (fs-caller-short.xml) */ },
      tailMs: 1500,
    });
    await callerDone;
    const left = (await esl.api('show channels count')).trim();
    writeFileSync(join(dir, 'transcript.json'), `${JSON.stringify({
      recorded: new Date().toISOString().slice(0, 10), freeswitch: (await esl.api('version')).trim(), channelsLeft: left, ...transcript,
    }, null, 2)}\n`);
    process.stdout.write(`${[...transcript.socket.map((l) => `socket  ${l}`), ...transcript.inbound.map((l) => `inbound ${l}`)].join('\n')}\n${left}\n`);
  } finally {
    for (const child of children) child.kill();
    esl.close();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`esl-probe: ${err.message}\n`);
  process.exitCode = 1;
});
