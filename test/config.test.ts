import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from '../src/config/load.js';

const minimal = () => ({
  twin: { iam_url: 'https://iam.example', cis_url: 'https://cis.example', email: 'a@b.c', password: 'p', sip: { uri: 'sip:bot@twin.example' } },
  asterisk: { url: 'http://127.0.0.1:8088', username: 'twin', password: 'x' },
  routes: { default: { bot: 'b1' } },
});

function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config', () => {
  it('takes an optional cluster: section, its password from the environment, never from the URL', () => {
    expect(parseConfig(minimal(), {}).cluster).toBeUndefined();
    const cluster = { redis_url: 'redis://10.0.0.5:6379/0', password: '${REDIS_PASSWORD}', name: 'acme', node: 'pbx-a', local_share: { max_concurrent_calls: 5, max_calls_per_second: 2 } };
    expect(parseConfig({ ...minimal(), cluster }, { REDIS_PASSWORD: 'redis-secret' }).cluster)
      .toMatchObject({ password: 'redis-secret', lease_ttl_ms: 15_000, command_timeout_ms: 50 });
    const inUrl = () => parseConfig({ ...minimal(), cluster: { ...cluster, redis_url: 'redis://:url-secret@10.0.0.5:6379' } }, { REDIS_PASSWORD: 'x' });
    expect(inUrl).toThrow('cluster.redis_url: put the password in cluster.password (or password_file), not in the URL');
    expect(inUrl).not.toThrow('url-secret');
    // ioredis reads options from the query string too: a password there would slip past the rule above.
    const inQuery = () => parseConfig({ ...minimal(), cluster: { ...cluster, redis_url: 'redis://10.0.0.5:6379/0?password=query-secret' } }, { REDIS_PASSWORD: 'x' });
    expect(inQuery).toThrow('cluster.redis_url: must not have a query string');
    expect(inQuery).not.toThrow('query-secret');
  });

  it('accepts a minimal config and fills defaults', () => {
    const config = parseConfig(minimal(), {});
    expect(config.trunk).toEqual({ cooldown_s: 180, max_concurrent_calls: 100, max_calls_per_second: 20, max_handover_delay_ms: 1000 });
    expect(config.session.max_age_s).toBe(170);
    expect(config.asterisk?.app).toBe('twin');
  });

  it('names the field and says what is wrong', () => {
    const raw = minimal() as Record<string, any>;
    raw.twin.iam_url = 'not a url';
    raw.trunk = { cooldown_s: -5 };
    raw.routes.default.fallback = { action: 'dance' };
    delete raw.asterisk.username;
    raw.asterisk.extra = 1;
    const list = problems(raw);
    expect(list).toContain('twin.iam_url: must be a URL such as https://host');
    expect(list.some((p) => p.startsWith('trunk.cooldown_s:'))).toBe(true);
    expect(list).toContain("routes.default.fallback.action: action must be 'hangup' or 'continue'");
    expect(list).toContain('asterisk.username: is required');
    expect(list).toContain('asterisk: unknown field(s) extra');
  });

  it('requires either a token or email and password', () => {
    const raw = minimal() as Record<string, any>;
    delete raw.twin.password;
    expect(problems(raw)).toEqual(['twin: give either token, or both email and password']);
  });

  it('refuses a header name that could break the INVITE', () => {
    const raw = minimal() as Record<string, any>;
    raw.twin.sip.headers = { 'X-Bad\r\nInjected': '1' };
    expect(problems(raw).join()).toMatch(/twin\.sip\.headers.*SIP header name/);
  });

  it('reads secrets from the environment and from files, and never echoes them in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-config-'));
    writeFileSync(join(dir, 'ari'), 'file-secret\n');
    const raw = minimal() as Record<string, any>;
    raw.twin.password = '${TWIN_PASSWORD}';
    delete raw.asterisk.password;
    raw.asterisk.password_file = join(dir, 'ari');
    const config = parseConfig(raw, { TWIN_PASSWORD: 'env-secret' });
    expect(config.twin.password).toBe('env-secret');
    expect(config.asterisk?.password).toBe('file-secret');

    expect(problems(raw, {})).toEqual(['twin.password: environment variable TWIN_PASSWORD is not set']);
    raw.asterisk.password_file = join(dir, 'missing');
    expect(problems(raw, { TWIN_PASSWORD: 'x' })).toEqual([`asterisk.password_file: cannot read ${join(dir, 'missing')}: ENOENT`]);
  });

  it('explains a file that is missing or not YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-config-'));
    expect(() => loadConfigFile(join(dir, 'nope.yaml'))).toThrow(/cannot read .*nope\.yaml: ENOENT/);
    writeFileSync(join(dir, 'bad.yaml'), 'twin: [unclosed');
    expect(() => loadConfigFile(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml line 1:\d+: YAML syntax error \(BAD_INDENT\)/);
  });

  it('tells a YAML mistake by line, column and code, never echoing the value, and prints no YAML warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-config-'));
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (const [value, code, line] of [
        ['*Kx9secret-alias', 'BAD_ALIAS', 3], ['!Kx9secret-tag', 'TAG_RESOLVE_FAILED', 3], ['|Kx9secret-block', 'UNEXPECTED_TOKEN', 3],
        ['@Kx9secret-reserved', 'BAD_SCALAR_START', 3], ['"Kx9secret-unclosed', 'MISSING_CHAR', 4], // found at the end of the file
      ] as const) {
        const file = join(dir, 'secret.yaml');
        writeFileSync(file, `twin:\n  email: a@b.c\n  password: ${value}\n`);
        const err = (() => { try { loadConfigFile(file, {}); } catch (e) { return e; } })();
        expect(err).toBeInstanceOf(ConfigError);
        const message = (err as Error).message;
        expect(message).toContain(`${file} line ${line}:`);
        expect(message).toContain(`YAML syntax error (${code})`);
        expect(message).not.toContain('Kx9');
      }
      await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('needs a PBX, and names the FreeSWITCH fields that are wrong', () => {
    const { asterisk: _, ...noPbx } = minimal();
    expect(problems(noPbx)).toEqual(['(top level): configure asterisk, freeswitch or twilio: the product needs a PBX (or Twilio numbers) to take calls from']);
    expect(problems({ ...noPbx, freeswitch: { listen_port: 70000, trunk_variable: 'a b' } })).toEqual([
      'freeswitch.listen_port: Too big: expected number to be <=65535',
      'freeswitch.esl_password: is required',
      'freeswitch.trunk_variable: must be a variable name (letters, digits, _)',
    ]);
    const fs = parseConfig({ ...noPbx, freeswitch: { esl_password: 'p' } }, {}).freeswitch!;
    expect(fs).toMatchObject({ listen_port: 8084, esl_port: 8021, bot_endpoint: 'sofia/gateway/twin/{user}', trunk_variable: 'twin_trunk', hold: 'ring' });
  });

  it('ships an example config that validates', () => {
    const config = loadConfigFile(new URL('../config.example.yaml', import.meta.url).pathname, { TWIN_PASSWORD: 'x', ARI_PASSWORD: 'y', ESL_PASSWORD: 'z', TWIN_CONNECTOR_API_TOKEN: 'a-long-dialer-api-token', TWIN_CONNECTOR_CALLBACK_SECRET: 'callback-secret-0123' });
    expect(config.routes.table).toHaveLength(2);
    expect(config.freeswitch?.esl_password).toBe('z');
    expect(config.outbound).toMatchObject({ default_country: 'GB', on_stale_session: 'rewarm', batch_size: 10 });
    expect(config.http?.api_token).toBe('a-long-dialer-api-token');
    expect(config.callbacks).toMatchObject({ secret: 'callback-secret-0123', retry_for_h: 24 });
    expect(config.shutdown.timeout_s).toBe(300);
  });

  it('ships a docker compose config that validates', () => {
    const config = loadConfigFile(new URL('../docker/config.yaml', import.meta.url).pathname, {
      TWIN_EMAIL: 'robot@example.com', TWIN_PASSWORD: 'x', ARI_PASSWORD: 'y', TWIN_CONNECTOR_CALLBACK_SECRET: 'callback-secret-0123',
    });
    expect(config.http).toMatchObject({ listen_host: '0.0.0.0', listen_port: 8080 });
    expect(config.callbacks?.dir).toBe('/var/lib/twin-connector/callbacks');
    expect(config.freeswitch).toBeUndefined();
  });

  it('names the outbound and http fields that are wrong', () => {
    expect(() => parseConfig({ ...minimal(), outbound: { default_country: 'Britain', on_stale_session: 'later' }, http: { api_token: 'short' } }))
      .toThrow(/outbound\.default_country: must be a two-letter country code such as GB[\s\S]*outbound\.on_stale_session[\s\S]*http\.api_token: must be at least 16 characters/);
  });
});

describe('config: operations sections', () => {
  it('tells a wrong type from a missing field, and checks the callbacks, log and shutdown fields', () => {
    expect(problems({ ...minimal(), trunk: { cooldown_s: 'soon' } })).toEqual(['trunk.cooldown_s: Invalid input: expected number, received string']);
    expect(problems({ ...minimal(), http: {}, callbacks: { public_url: 'https://c.example', secret: 'short', forward_to: [] } })).toEqual([
      'callbacks.secret: must be 16 to 128 letters, digits, _ or -',
      'callbacks.forward_to: name at least one URL to forward callbacks to',
    ]);
    expect(problems({ ...minimal(), callbacks: { public_url: 'https://c.example', secret: 'a'.repeat(16), forward_to: ['https://crm.example/x'] } }))
      .toEqual(["callbacks: callbacks need the http section: Twin posts them to the product's HTTP port"]);
    expect(problems({ ...minimal(), log: { mask_numbers: 'yes' }, shutdown: { timeout_s: 0 } })).toEqual([
      'log.mask_numbers: Invalid input: expected boolean, received string',
      'shutdown.timeout_s: Too small: expected number to be >0',
    ]);
  });
});
