import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { selectRoute } from '../src/core/route.js';
import { parseStasisArgs } from '../src/pbx/asterisk/driver.js';

const routes = parseConfig({
  twin: { iam_url: 'https://i.example', cis_url: 'https://c.example', token: 't', sip: { uri: 'sip:b@t' } },
  freeswitch: { esl_password: 'ClueCon' },
  routes: {
    default: { bot: 'default-bot', variables: { a: '1' }, fallback: { action: 'hangup', cause: 17 } },
    table: [
      { dialed: '+442071234567', bot: 'uk-bot', record: true },
      { caller_prefix: '+49', variables: { language: 'de' } },
    ],
  },
}, {}).routes;

describe('route selection', () => {
  it('uses the default when nothing else matches', () => {
    expect(selectRoute(routes, { hints: {}, dialed: '100', caller: '+1555' })).toMatchObject({
      bot: 'default-bot', record: false, variables: { a: '1' }, fallback: { action: 'hangup', cause: 17 },
    });
  });

  it('takes the first table entry matching the dialled number or caller', () => {
    expect(selectRoute(routes, { hints: {}, dialed: '+442071234567', caller: '+49301' })).toMatchObject({ bot: 'uk-bot', record: true });
    expect(selectRoute(routes, { hints: {}, dialed: '100', caller: '+49301' })).toMatchObject({ bot: 'default-bot', variables: { a: '1', language: 'de' } });
  });

  it('lets the dialplan hints override the table, and reports bad hints instead of failing', () => {
    const route = selectRoute(routes, {
      hints: parseStasisArgs(['inbound', 'bot=vip', 'record=maybe', 'var_tier=gold', 'fallback_context=agents', 'fallback_priority=x', 'external_id=crm-9']),
      dialed: '+442071234567', caller: '+1',
    });
    expect(route).toMatchObject({
      bot: 'vip', record: true, externalId: 'crm-9', variables: { a: '1', tier: 'gold' },
      fallback: { action: 'continue', context: 'agents', extension: 's', priority: 1 },
    });
    expect(route.warnings).toEqual(["hint record ignored: 'maybe' is not yes/no", 'hint fallback_priority ignored: not a positive integer']);
  });

  it('refuses fallback hints that are not dialplan names (uuid_transfer injection), quoting them, and keeps the route\'s fallback (issue 13, item 7)', () => {
    const route = selectRoute(routes, {
      hints: { fallback_context: 'twin-fallback', fallback_extension: '9999 XML internal', bot: 'vip' }, dialed: '1', caller: '2',
    });
    expect(route.fallback).toEqual({ action: 'hangup', cause: 17 });
    expect(route.bot).toBe('vip'); // the other hints still apply
    expect(route.warnings).toEqual([
      'hint fallback_extension ignored: "9999 XML internal" is not a dialplan name (letters, digits, _ + * # . -); the route\'s own fallback applies',
    ]);
    const quoted = selectRoute(routes, { hints: { fallback_context: 'a"b${x}' }, dialed: '1', caller: '2' });
    expect(quoted.fallback).toEqual({ action: 'hangup', cause: 17 });
    expect(quoted.warnings[0]).toContain('"a\\"b${x}"');
  });

  it('ignores hint values with control characters', () => {
    const route = selectRoute(routes, { hints: { bot: 'x\r\ny' }, dialed: '1', caller: '2' });
    expect(route.bot).toBe('default-bot');
    expect(route.warnings).toEqual(['hint bot ignored: control characters']);
  });
});
