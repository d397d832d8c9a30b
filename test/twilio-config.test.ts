/** The `twilio:` config section and the routes' Twilio actions: validated at start, secrets as for the PBXs. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load.js';
import { selectRoute } from '../src/core/route.js';

const SID = `AC${'a'.repeat(32)}`;
const base = (over: Record<string, unknown> = {}) => ({
  twin: { iam_url: 'https://iam.example', cis_url: 'https://cis.example', token: 't', sip: { uri: 'sip:bot@twin.example' } },
  twilio: { account_sid: SID, auth_token: '${TWILIO_AUTH_TOKEN}', public_url: 'https://connector.example.com/twilio' },
  routes: { default: { bot: 'b1' } },
  ...over,
});

function problems(raw: unknown, env: NodeJS.ProcessEnv = { TWILIO_AUTH_TOKEN: 'tok-secret' }): string[] {
  try {
    parseConfig(raw, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('twilio config', () => {
  it('is enough on its own (no PBX), takes the auth token from ${ENV} or auth_token_file, and fills defaults', () => {
    const config = parseConfig(base(), { TWILIO_AUTH_TOKEN: 'tok-secret' });
    expect(config.twilio).toMatchObject({ auth_token: 'tok-secret', listen_port: 8085, warmup_timeout_ms: 12_000, api_url: 'https://api.twilio.com' });
    const dir = mkdtempSync(join(tmpdir(), 'twilio-cfg-'));
    writeFileSync(join(dir, 'token'), 'file-secret\n');
    const fromFile = base({ twilio: { account_sid: SID, auth_token_file: join(dir, 'token'), public_url: 'https://c.example/t' } });
    expect(parseConfig(fromFile, {}).twilio?.auth_token).toBe('file-secret');
  });

  it('names the bad field, never the token', () => {
    const bad = problems(base({ twilio: { account_sid: 'XX1', auth_token: 'tok-secret', public_url: 'not a url', warmup_timeout_ms: 20_000 } }));
    expect(bad).toEqual(expect.arrayContaining([
      expect.stringMatching(/^twilio\.account_sid: must be an Account SID/),
      expect.stringMatching(/^twilio\.public_url: /),
      expect.stringMatching(/^twilio\.warmup_timeout_ms: /),
    ]));
    expect(bad.join('\n')).not.toContain('tok-secret');
  });

  it('refuses SIP headers Twilio would not pass (no X- prefix) when twilio is configured', () => {
    const twin = { iam_url: 'https://iam.example', cis_url: 'https://cis.example', token: 't', sip: { uri: 'sip:bot@twin.example', headers: { 'Twin-Id': '{twin_id}' } } };
    expect(problems(base({ twin }))).toEqual([expect.stringMatching(/^twin\.sip\.headers: with twilio configured, every twin\.sip header/)]);
  });

  it('validates the routes\' Twilio actions: dial exactly one of number or sip, an E.164 number, a plain SIP URI, a URL to redirect to', () => {
    const route = (twilio: unknown) => base({ routes: { default: { bot: 'b1', twilio } } });
    expect(problems(route({ fallback: { action: 'dial', number: '+442071234567' }, after_bot_hangup: { action: 'redirect', url: 'https://c.example/next' } }))).toEqual([]);
    expect(problems(route({ fallback: { action: 'dial', number: '+44', sip: 'sip:a@b' } }))[0]).toMatch(/give exactly one of number or sip/);
    expect(problems(route({ fallback: { action: 'dial', number: '0207 123' } }))[0]).toMatch(/must be an E\.164 number/);
    expect(problems(route({ fallback: { action: 'dial', sip: 'sip:a@b?X-Evil=1' } }))[0]).toMatch(/must be a SIP URI/);
    expect(problems(route({ fallback: { action: 'continue', context: 'x' } }))[0]).toMatch(/action must be 'hangup', 'reject', 'dial' or 'redirect'/);
  });

  it('gives each route its Twilio actions (the table entry, then the default, then <Hangup/>)', () => {
    const config = parseConfig(base({ routes: {
      default: { bot: 'b1', twilio: { fallback: { action: 'reject', reason: 'busy' } } },
      table: [{ dialed: '+15550199', twilio: { fallback: { action: 'dial', number: '+442071234567' } } }],
    } }), { TWILIO_AUTH_TOKEN: 'x' });
    expect(selectRoute(config.routes, { hints: {}, dialed: '+15550199', caller: '+1' }).twilio)
      .toEqual({ fallback: { action: 'dial', number: '+442071234567', timeout_s: 30 }, afterBotHangup: { action: 'hangup' }, transfers: {} });
    expect(selectRoute(config.routes, { hints: {}, dialed: '+1', caller: '+1' }).twilio.fallback).toEqual({ action: 'reject', reason: 'busy' });
  });

  it('takes a section without public_url (outbound only) and defaults the Calls API poll interval', () => {
    const config = parseConfig(base({ twilio: { account_sid: SID, auth_token: 'x' } }), {});
    expect(config.twilio).toMatchObject({ api_url: 'https://api.twilio.com', poll_interval_ms: 1000 });
    expect(config.twilio?.public_url).toBeUndefined();
    expect(problems(base({ twilio: { account_sid: SID, auth_token: 'x', poll_interval_ms: 5 } }))[0]).toMatch(/^twilio\.poll_interval_ms: /);
  });
});
