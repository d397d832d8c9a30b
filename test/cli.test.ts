import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { stringify } from 'yaml';
import { AriSimulator } from '../src/sim/asterisk/ari-sim.js';
import { FreeSwitchSimulator } from '../src/sim/freeswitch/esl-sim.js';
import { TwinSimulator } from '../src/sim/twin-sim.js';
import { waitFor } from './helpers.js';
import { labConfig } from '../src/sim/lab.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'twin-cli-'));
const twin = new TwinSimulator();
const ari = new AriSimulator();
const fs = new FreeSwitchSimulator();

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ...env } });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

/** The CLI's stdout and stderr apart. */
async function cliApart(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The JSON log lines of a stream; none may be anything else. */
function logLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}

function writeConfig(name: string, overrides: (c: Record<string, any>) => void): string {
  const config = labConfig(twin, ari, fs) as Record<string, any>;
  overrides(config);
  const file = join(dir, name);
  writeFileSync(file, stringify(config));
  return file;
}

beforeAll(async () => {
  await Promise.all([twin.start(), ari.start(), fs.start()]);
});
afterAll(async () => {
  await Promise.all([twin.stop(), ari.stop(), fs.stop()]);
});

describe('twin-connector check', () => {
  it('passes when Twin IAM and ARI accept the credentials', async () => {
    const file = writeConfig('good.yaml', (c) => { c.twin.password = '${TWIN_PASSWORD}'; });
    const { code, out } = await cli(['check', '--config', file], { TWIN_PASSWORD: twin.password });
    expect(out).toContain(`ok    config ${file} is valid`);
    expect(out).toContain('ok    Twin IAM login');
    expect(out).toContain('ok    Asterisk ARI at');
    expect(out).toContain(`ok    FreeSWITCH ESL at 127.0.0.1:${fs.port} (FreeSWITCH 1.10.12-release)`);
    expect(code).toBe(0);
  });

  it('says in plain words what failed, without the secrets, and exits 1', async () => {
    const file = writeConfig('bad-pass.yaml', (c) => {
      c.twin.password = 'wrong-twin-pw';
      c.asterisk.password = 'wrong-ari-pw';
      c.freeswitch.esl_password = 'wrong-esl-pw';
    });
    const { code, out } = await cli(['check', '--config', file]);
    expect(out).toContain('FAIL  Twin IAM login failed: HTTP 401 (wrong email or password?)');
    expect(out).toContain("refused user 'asterisk': wrong username or password");
    expect(out).toContain(`FAIL  FreeSWITCH ESL at 127.0.0.1:${fs.port} refused the password (see event_socket.conf.xml)`);
    expect(out).not.toMatch(/wrong-(twin|ari|esl)-pw/);
    expect(code).toBe(1);
  });

  it('warns when a config file that holds secrets inline is open to group or others', async () => {
    const inline = writeConfig('inline-secrets.yaml', () => {}); // passwords written in the file
    chmodSync(inline, 0o644);
    const exposed = await cli(['check', '--config', inline]);
    expect(exposed.out).toContain(`WARN  config ${inline} is open to group/others (mode 0644) and holds secrets inline (twin.password, asterisk.password, freeswitch.esl_password)`);
    expect(exposed.out).not.toContain(twin.password);
    expect(exposed.code).toBe(0); // a warning, not a failure
    chmodSync(inline, 0o600);
    expect((await cli(['check', '--config', inline])).out).not.toContain('WARN');

    const fromEnv = writeConfig('env-secrets.yaml', (c) => {
      c.twin.password = '${TWIN_PASSWORD}';
      c.asterisk.password = '${ARI_PASSWORD}';
      c.freeswitch.esl_password = '${ESL_PASSWORD}';
    });
    chmodSync(fromEnv, 0o644);
    const env = { TWIN_PASSWORD: twin.password, ARI_PASSWORD: ari.password, ESL_PASSWORD: fs.password };
    expect((await cli(['check', '--config', fromEnv], env)).out).not.toContain('WARN');
  });

  it('checks that the callback folder is writable', async () => {
    const good = writeConfig('callbacks-ok.yaml', (c) => {
      c.http = { listen_port: 0 };
      c.callbacks = { public_url: 'https://c.example', secret: 'check-secret-0123456789', dir: join(dir, 'callbacks'), forward_to: ['https://crm.example/x'] };
    });
    expect((await cli(['check', '--config', good], {})).out).toContain(`ok    callback folder ${join(dir, 'callbacks')} is writable`);
    writeFileSync(join(dir, 'a-file'), 'not a folder');
    const bad = writeConfig('callbacks-bad.yaml', (c) => {
      c.http = { listen_port: 0 };
      c.callbacks = { public_url: 'https://c.example', secret: 'check-secret-0123456789', dir: join(dir, 'a-file', 'callbacks'), forward_to: ['https://crm.example/x'] };
    });
    const { code, out } = await cli(['check', '--config', bad], {});
    expect(out).toContain(`FAIL  callback folder ${join(dir, 'a-file', 'callbacks')} is not writable by this user: ENOTDIR`);
    expect(code).toBe(1);
  });

  it('warns when FreeSWITCH lacks the shipped contexts the product sends callers to (twin-transfers, twin-after-socket)', async () => {
    const file = writeConfig('fs-contexts.yaml', () => {});
    expect((await cli(['check', '--config', file])).out).not.toContain('has no dialplan context');
    fs.dialplanContexts.delete('twin-transfers');
    try {
      const { code, out } = await cli(['check', '--config', file]);
      expect(out).toContain('WARN  FreeSWITCH has no dialplan context twin-transfers: install dialplan/freeswitch/twin-transfers.xml');
      expect(out).not.toContain('no dialplan context twin-after-socket');
      expect(code).toBe(0);
    } finally {
      fs.dialplanContexts.add('twin-transfers');
    }
    fs.afterSocketHasBotFailed = false; // a twin-after-socket.xml from before issue 20
    try {
      const { code, out } = await cli(['check', '--config', file]);
      expect(out).toContain("WARN  FreeSWITCH's twin-after-socket has no extension bot_failed (it predates the hand-back of issue 20)");
      expect(code).toBe(0);
    } finally {
      fs.afterSocketHasBotFailed = true;
    }
  });

  it('reports an unreachable ARI and ESL', async () => {
    const file = writeConfig('no-pbx.yaml', (c) => { c.asterisk.url = 'http://127.0.0.1:1'; c.freeswitch.esl_port = 1; });
    const { code, out } = await cli(['check', '--config', file]);
    expect(out).toMatch(/cannot reach ARI at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    expect(out).toContain('FAIL  cannot reach FreeSWITCH ESL at 127.0.0.1:1: connection refused');
    expect(code).toBe(1);
  });

  it('prints config errors that name the field, with no stack trace', async () => {
    const file = writeConfig('invalid.yaml', (c) => { c.trunk.cooldown_s = 'soon'; });
    const { code, out } = await cli(['check', '--config', file]);
    expect(out).toContain('trunk.cooldown_s:');
    expect(out).not.toMatch(/\n\s+at /);
    expect(code).toBe(2);
  });
});

describe('twin-connector call', () => {
  it('prints the progress and the outcome, and exits 0 when the bot was connected', async () => {
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
    const file = writeConfig('call.yaml', () => {});
    const { code, out } = await cli(['call', '--config', file, '--to', '+442079460018', '--from', '+12025550143', '--bot', 'sales', '--var', 'lang=en', '--record']);
    expect(out).toContain('warming up the Twin session');
    expect(out).toContain('dialling +442079460018');
    expect(out).toContain('connected to the bot');
    expect(out).toMatch(/outcome: connected \(twin id [0-9a-f-]{36}; bot hung up first\)/);
    expect(code).toBe(0);
    expect(ari.dials.at(-1)).toMatchObject({ to: '+442079460018', from: '+12025550143' });
  });

  it('refuses a number it cannot read, saying which and why, before dialling anyone', async () => {
    const file = writeConfig('call-bad.yaml', () => {});
    const dials = ari.dials.length;
    const { code, out } = await cli(['call', '--config', file, '--to', '020 7946 0018', '--from', '+12025550143', '--bot', 'b']);
    expect(out.trim()).toBe('to: "020 7946 0018" is not in E.164 form (+ and country code) and outbound.default_country is not set');
    expect(code).toBe(2);
    expect(ari.dials.length).toBe(dials);
  });

  it('exits 1 with the outcome when the subscriber is busy', async () => {
    ari.subscriberBehaviour = () => ({ kind: 'busy' });
    const file = writeConfig('call-busy.yaml', (c) => { c.outbound = { default_country: 'GB', caller_id: '+12025550143' }; });
    const { code, out } = await cli(['call', '--config', file, '--to', '020 7946 0018', '--bot', 'b', '--pbx', 'asterisk']);
    ari.subscriberBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    expect(out).toContain('outcome: busy (cause 17 (User busy), SIP 486');
    expect(code).toBe(1);
    expect(ari.dials.at(-1)!.to).toBe('+442079460018');
  });

  it('hangs up a ringing call on Ctrl-C and exits 1', async () => {
    ari.subscriberBehaviour = () => ({ kind: 'no-answer' });
    const file = writeConfig('call-ctrl-c.yaml', () => {});
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'call', '--config', file, '--to', '+442079460077', '--from', '+12025550143', '--bot', 'b'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const dial = await waitFor(() => ari.dials.find((d) => d.to === '+442079460077'), 'the call to ring', 10_000);
      child.kill('SIGINT');
      expect(await exited).toBe(1);
      expect(out).toContain('stopping: hanging up the call');
      expect(out).toContain('outcome: error (the product is stopping; twin id');
      expect((await dial.left).kind).toBe('hungup-by-app'); // the phone stopped ringing
    } finally {
      child.kill('SIGKILL');
      ari.subscriberBehaviour = () => ({ kind: 'answer', afterMs: 5 });
    }
  });

  // Issue 22, item 2: stdout is for people (and scripts reading the outcome); the JSON log goes to stderr.
  it('prints only its own lines on stdout; the log (here at debug level) goes to stderr, numbers masked as configured', async () => {
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 50 });
    const file = writeConfig('call-debug.yaml', (c) => { c.log = { level: 'debug', mask_numbers: true }; });
    const { code, stdout, stderr } = await cliApart(['call', '--config', file, '--to', '+442079460018', '--from', '+12025550143', '--bot', 'sales']);
    expect(stdout.trim().split('\n')).toEqual([
      'warming up the Twin session', 'dialling +442079460018', 'answered; connecting to the bot', 'connected to the bot',
      expect.stringMatching(/^outcome: connected \(twin id [0-9a-f-]{36}; bot hung up first\)$/),
    ]);
    const log = logLines(stderr);
    expect(log.some((l) => l.msg === 'outbound call connected')).toBe(true);
    expect(stderr).not.toContain('442079460018');
    expect(code).toBe(0);
  });
});

describe('twin-connector campaign', () => {
  it('prints only its own lines on stdout; the log goes to stderr', async () => {
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const file = writeConfig('campaign-debug.yaml', (c) => { c.log = { level: 'debug' }; c.outbound = { caller_id: '+12025550143' }; });
    const csv = join(dir, 'stdout-list.csv');
    writeFileSync(csv, 'number,bot\n+442079460031,sales\n+442079460032,sales\n');
    const { code, stdout, stderr } = await cliApart(['campaign', csv, '--config', file, '--pbx', 'asterisk']);
    expect(stdout.trim().split('\n').sort()).toEqual([
      expect.stringMatching(/^line 2: \+442079460031 connected \(twin id [0-9a-f-]{36}; bot hung up first\)$/),
      expect.stringMatching(/^line 3: \+442079460032 connected \(twin id [0-9a-f-]{36}; bot hung up first\)$/),
      expect.stringMatching(/^results: /),
      expect.stringMatching(/^summary: connected 2 \(2 rows, [12] warm-up requests\)$/),
    ]);
    expect(logLines(stderr).some((l) => l.msg === 'outbound call connected')).toBe(true);
    expect(code).toBe(0);
  });

  // Issue 22, item 3: one rule for every file beside the list: its whole name plus a suffix.
  it('writes FILE.csv.results.csv beside FILE.csv.journal, keeping each row\'s external_id', async () => {
    ari.botBehaviour = () => ({ kind: 'answer', afterMs: 5, hangupAfterMs: 20 });
    const file = writeConfig('campaign-files.yaml', (c) => { c.outbound = { caller_id: '+12025550143' }; });
    const csv = join(dir, 'crm-list.csv');
    writeFileSync(csv, 'number,bot,external_id\n+442079460041,sales,crm-41\n+442079460042,sales,=crm-42\nnot-a-number,sales,crm-43\n');
    const { code, stdout } = await cliApart(['campaign', csv, '--config', file, '--pbx', 'asterisk']);
    expect(stdout).toContain(`results: ${csv}.results.csv\n`);
    expect(existsSync(`${csv}.journal`)).toBe(true);
    expect(existsSync(join(dir, 'crm-list.results.csv'))).toBe(false);
    const rows = parse(readFileSync(`${csv}.results.csv`), { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => [r.number, r.status, r.external_id])).toEqual([
      ['+442079460041', 'connected', 'crm-41'],
      ['+442079460042', 'connected', "'=crm-42"], // a stranger's formula stays text
      ['not-a-number', 'invalid', 'crm-43'],
    ]);
    expect(code).toBe(0);
  });
});
