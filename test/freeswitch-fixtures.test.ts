/**
 * The simulator against what a real FreeSWITCH 1.10.12 sent (issue 20): each fixture in
 * test/fixtures/freeswitch/h1-… to h8-… was recorded by bench/real-pbx/esl-probe.ts, a scripted stand-in for
 * the product playing one call through the shipped dialplan (static `socket … full`, then
 * twin-after-socket). The same script is played against the simulator here; both connections'
 * transcripts must be the ones recorded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { FreeSwitchSimulator } from '../src/sim/freeswitch/esl-sim.js';
import { recordTranscript, type ProbeScript, type Transcript } from '../src/sim/freeswitch/transcript.js';
import type { SimCall } from '../src/sim/call-model.js';
import { INBOUND_EVENTS, INBOUND_FILTERS } from '../src/pbx/freeswitch/esl.js';

const DIR = fileURLToPath(new URL('./fixtures/freeswitch/', import.meta.url));
/** bench/real-pbx/esl-probe.ts's dial string. */
const PROBE_DIAL = "{sip_h_X-TWIN-CallId=probe-1,sip_h_X-TWIN-EnableRecord=1,origination_caller_id_number=+15550001,"
  + "origination_caller_id_name=\\'Probe Caller\\',originate_timeout=10}sofia/gateway/twin/twinbot";

interface Fixture {
  name: string;
  scenario: { about: string; bot: 'answer' | 'busy' | 'bye'; caller: 'hold' | 'short'; script: ProbeScript };
  recorded: Transcript & { freeswitch: string; channelsLeft: string };
}

const FIXTURES: Fixture[] = readdirSync(DIR).filter((name) => /^h\d/.test(name)).sort().map((name) => ({
  name,
  scenario: JSON.parse(readFileSync(join(DIR, name, 'scenario.json'), 'utf8')) as Fixture['scenario'],
  recorded: JSON.parse(readFileSync(join(DIR, name, 'transcript.json'), 'utf8')) as Fixture['recorded'],
}));

let sim: FreeSwitchSimulator | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

/** The fixture's script against the simulator, with the bot and caller behaving as SIPp did. */
async function replay(f: Fixture): Promise<Transcript> {
  sim = new FreeSwitchSimulator();
  const fs = sim;
  await fs.start();
  fs.botBehaviour = () => (f.scenario.bot === 'busy' ? { kind: 'busy' }
    : f.scenario.bot === 'bye' ? { kind: 'answer', afterMs: 5, hangupAfterMs: 50 } : { kind: 'answer', afterMs: 5 });
  let call: SimCall | undefined;
  const transcript = await recordTranscript({
    eslHost: '127.0.0.1', eslPort: fs.port, eslPassword: fs.password, listenPort: 0, script: f.scenario.script, dial: PROBE_DIAL,
    placeCall: (port) => {
      fs.socketTarget = { host: '127.0.0.1', port };
      const leavesBeforeSocket = f.scenario.script.socket === false;
      call = fs.placeCall({ number: '+15550001', dialed: '7400', hints: { bot: 'lab-bot', record: '1' }, leavesBeforeSocket });
      // The SIPp caller that holds hangs up on its own once talking to the bot (fs-caller.xml, 6 s).
      if (f.scenario.caller === 'hold' && f.scenario.bot === 'answer') {
        fs.onChannelVar = (_, name, value) => {
          if (name === 'twin_next_step' && value === 'released') setTimeout(() => call?.hangup(), 20);
        };
      }
    },
    act: (what) => { if (what === 'hangup') call?.hangup(); },
    tailMs: 50,
  });
  return transcript;
}

describe('FreeSWITCH simulator against the recordings of issue 20 (test/fixtures/freeswitch/h1-… to h8-…)', () => {
  it('has the recordings, made with the subscription the product uses', () => {
    expect(FIXTURES.map((f) => f.name)).toEqual([
      'h1-hand-back', 'h2-bot-busy', 'h3-bot-hangs-up', 'h5-hold-break', 'h6-caller-gone-in-warm-up', 'h7-inline-bridge',
      'h8-caller-gone-before-socket',
    ]);
    for (const f of FIXTURES) {
      expect(f.recorded.freeswitch).toContain('1.10.12');
      expect(f.recorded.channelsLeft).toBe('0 total.');
      expect(f.scenario.script.inboundFilters).toEqual(INBOUND_FILTERS);
      expect(f.scenario.script.inboundEvents).toBe(INBOUND_EVENTS);
    }
  });

  for (const f of FIXTURES) {
    it(`${f.name}: ${f.scenario.about}`, async () => {
      const replayed = await replay(f);
      expect(replayed.socket).toEqual(f.recorded.socket);
      expect(replayed.inbound).toEqual(f.recorded.inbound);
    });
  }
});
