/**
 * `twin-connector check` asks the PBX for what the config needs in it (issue 22, item 6): the bot
 * endpoint, the outbound endpoint, the dialplan places callers are sent to; and lists what it
 * cannot ask. In process, against the ARI and ESL simulators.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCheck } from '../src/check.js';
import { labConfig, merge } from '../src/sim/lab.js';
import { simulatorsForProcessTests } from './daemon-process.js';

const dir = mkdtempSync(join(tmpdir(), 'twin-check-'));
const { twin, ari, fs } = simulatorsForProcessTests({ freeswitch: true });

let files = 0;
/** Runs the check on the lab config with `over` merged in, for one PBX; its exit code and printed lines. */
async function check(pbx: 'asterisk' | 'freeswitch', over: Record<string, unknown> = {}): Promise<{ code: number; out: string }> {
  const config = merge(labConfig(twin, pbx === 'asterisk' ? ari : undefined, pbx === 'freeswitch' ? fs : undefined), over);
  const file = join(dir, `config-${++files}.yaml`);
  writeFileSync(file, stringify(config), { mode: 0o600 });
  let out = '';
  const code = await runCheck(file, { write: (text: string) => { out += text; } });
  return { code, out };
}

const ROUTES = {
  routes: {
    default: {
      bot: 'b', fallback: { action: 'continue', context: 'twin-fallback', extension: 'agent' },
      transfers: { operator: 'twin-transfers,operator' },
    },
  },
};

describe('twin-connector check on Asterisk', () => {
  it('says what it checked: the bot and outbound endpoints and each dialplan place; lists what it cannot check; exit 0', async () => {
    const { code, out } = await check('asterisk', ROUTES);
    expect(out).toContain('ok    Asterisk has the bot endpoint PJSIP/twin (asterisk.bot_endpoint), state online\n');
    expect(out).toContain('ok    Asterisk has the outbound endpoint PJSIP/carrier (asterisk.outbound_endpoint)\n');
    expect(out).toContain('ok    Asterisk dialplan has twin-fallback,agent,1 (routes.default.fallback)\n');
    expect(out).toContain('ok    Asterisk dialplan has twin-transfers,operator,1 (routes.default.transfers.operator)\n');
    expect(out).toContain('cannot be checked from here (check these yourself):\n');
    expect(out).toContain('  -   Asterisk: a tone zone for an in-band ringback ([from-customers-answered], asterisk.hold: ring on an answered caller): ARI cannot read indications.conf (see `indication show`)\n');
    expect(out).not.toContain('music-on-hold');
    expect(out.trimEnd().split('\n').at(-1)).toBe('all checks passed');
    expect(code).toBe(0);
    expect(ari.leftovers().bridges).toEqual([]); // the bridge it asked through is gone
  });

  it('fails, in one line, for a bot endpoint naming a PJSIP endpoint Asterisk does not have', async () => {
    const { code, out } = await check('asterisk', { asterisk: { bot_endpoint: 'PJSIP/nope/{uri}' } });
    expect(out).toContain("FAIL  Asterisk has no PJSIP endpoint 'nope' (asterisk.bot_endpoint PJSIP/nope/{uri}): no call can reach the bot; "
      + 'define it in pjsip.conf (type=endpoint, as in dialplan/asterisk/pjsip.conf) and `module reload res_pjsip.so`\n');
    expect(out).toContain('1 check(s) failed');
    expect(code).toBe(1);
  });

  it('warns when the outbound endpoint is missing (only outbound calls need it)', async () => {
    const { code, out } = await check('asterisk', { asterisk: { outbound_endpoint: 'PJSIP/{number}@nocarrier' } });
    expect(out).toContain("WARN  Asterisk has no PJSIP endpoint 'nocarrier' (asterisk.outbound_endpoint PJSIP/{number}@nocarrier): outbound calls would fail\n");
    expect(code).toBe(0);
  });

  it('fails for each dialplan place that does not exist: a route fallback, a transfer destination, the bot dialplan\'s context', async () => {
    const { code, out } = await check('asterisk', {
      asterisk: { bot_leg: 'dialplan', dial_context: 'twin-bott' },
      routes: {
        default: { bot: 'b', fallback: { action: 'continue', context: 'twin-falback' } },
        table: [{ dialed: '100', after_bot_hangup: { action: 'continue', context: 'twin-fallback', extension: 'survey' }, transfers: { sales: 'twin-transfers,sales' } }],
      },
    });
    expect(out).toContain('FAIL  Asterisk dialplan has no context twin-bott (asterisk.dial_context, bot_leg: dialplan): a caller sent there is hung up\n');
    expect(out).toContain('ok    Asterisk dialplan has context twin-transfers (asterisk.transfer_context)\n');
    expect(out).toContain('FAIL  Asterisk dialplan has no twin-falback,s,1 (routes.default.fallback): a caller sent there is hung up\n');
    expect(out).toContain('FAIL  Asterisk dialplan has no twin-fallback,survey,1 (routes.table[0].after_bot_hangup): a caller sent there is hung up\n');
    expect(out).toContain('FAIL  Asterisk dialplan has no twin-transfers,sales,1 (routes.table[0].transfers.sales): a caller sent there is hung up\n');
    expect(out).toContain('4 check(s) failed');
    expect(code).toBe(1);
    expect(ari.leftovers().bridges).toEqual([]);
  });

  it('says which mode bot_leg auto (the default) takes: dialplan with twin-bot.conf, else bridge with a warning', async () => {
    const { out } = await check('asterisk');
    expect(out).toContain('ok    bot_leg auto: Asterisk has [twin-bot] (twin-bot.conf), so the dialplan opens the bot leg (the fast mode)\n');
    const without = await check('asterisk', { asterisk: { dial_context: 'twin-bot-missing' } });
    expect(without.out).toContain('WARN  bot_leg auto: Asterisk has no [twin-bot-missing], so calls take bridge mode');
    expect(without.code).toBe(0);
    const pinned = await check('asterisk', { asterisk: { bot_leg: 'bridge' } });
    expect(pinned.out).not.toContain('bot_leg auto');
  });

  it('names the music-on-hold class as not checkable when the hold is moh', async () => {
    const { out } = await check('asterisk', { asterisk: { hold: 'moh', moh_class: 'jazz' } });
    expect(out).toContain("  -   Asterisk: the music-on-hold class 'jazz' (asterisk.hold: moh): ARI cannot list classes (see `moh show classes`)\n");
  });
});

describe('twin-connector check on FreeSWITCH', () => {
  it('checks the bot\'s sofia gateway and the routes\' contexts; their extensions are listed as not checkable', async () => {
    const { code, out } = await check('freeswitch', ROUTES);
    expect(out).toContain('ok    FreeSWITCH has the bot endpoint sofia/gateway/twin (freeswitch.bot_endpoint), state NOREG\n');
    expect(out).toContain('ok    FreeSWITCH dialplan has context twin-fallback (routes.default.fallback)\n');
    expect(out).toContain('ok    FreeSWITCH dialplan has context twin-transfers (routes.default.transfers.operator)\n');
    expect(out).toContain('  -   FreeSWITCH: that these extensions match in their context: agent@twin-fallback, operator@twin-transfers');
    expect(code).toBe(0);
  });

  it('fails for a bot endpoint through a gateway FreeSWITCH does not have, and for a missing route context', async () => {
    fs.gateways.delete('twin');
    try {
      const { code, out } = await check('freeswitch', { routes: { default: { bot: 'b', fallback: { action: 'continue', context: 'people' } } } });
      expect(out).toContain("FAIL  FreeSWITCH has no sofia gateway 'twin' (freeswitch.bot_endpoint sofia/gateway/twin/{user}): no call can reach the bot; "
        + 'add it to a sofia profile (as in dialplan/freeswitch/sip_profiles-external-twin.xml), `reloadxml` and `sofia profile external rescan`\n');
      expect(out).toContain('FAIL  FreeSWITCH has no dialplan context people (routes.default.fallback): a caller sent there is hung up (NO_ROUTE_DESTINATION)\n');
      expect(out).toContain('2 check(s) failed');
      expect(code).toBe(1);
    } finally {
      fs.gateways.set('twin', '127.0.0.1:5072');
    }
  });

  it('lists a bot endpoint that goes through no gateway as not checkable', async () => {
    const { code, out } = await check('freeswitch', { freeswitch: { bot_endpoint: 'sofia/external/{uri}' } });
    expect(out).toContain('  -   FreeSWITCH: freeswitch.bot_endpoint sofia/external/{uri} goes through no sofia gateway\n');
    expect(code).toBe(0);
  });
});
