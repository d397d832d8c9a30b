#!/usr/bin/env node
/** Entry point: run | check | call | campaign | demo. */
import { parseArgs } from 'node:util';
import { CONFIG_ENV, ConfigError, loadConfigFile, parseConfig, readConfigYaml } from './config/load.js';
import { CredentialError, withTwilioCredentials } from './pbx/twilio/credentials.js';
import { createLogger, type Logger } from './log.js';
import type { Config } from './config/schema.js';
import { Daemon } from './daemon.js';
import { installLastResortHandlers } from './last-resort.js';
import { RequestError } from './outbound/request.js';
import { CampaignFileError } from './outbound/campaign-file.js';
import { JournalLockedError } from './outbound/journal-lock.js';
import type { Output } from './outbound/commands.js';

const USAGE = `usage: twin-connector <command> [--config FILE]

commands:
  run       run the daemon (config from --config or $${CONFIG_ENV})
  check     validate the config, log in to Twin IAM, connect to the PBX; exit 1 on any failure
  call      --to NUMBER [--from NUMBER] --bot BOT [--var k=v]... [--record] [--external-id X] [--pbx asterisk|freeswitch|twilio]
            [--account SID --token TOKEN]   (Twilio's account; else the config's twilio: section)
            warm up, dial, connect the answer to the bot; exit 0 when connected, 1 otherwise
  campaign  FILE.csv [--results FILE] [--journal FILE] [--concurrency N] [--cps N] [--batch N] [--pbx P]
            call every row (columns: number, caller, bot, external_id, record, var_*); rerun to resume
  demo      run the daemon against the built-in Asterisk/FreeSWITCH/Twin simulators and show calls flowing
`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' },
      to: { type: 'string' }, from: { type: 'string' }, bot: { type: 'string' }, var: { type: 'string', multiple: true },
      record: { type: 'boolean' }, 'external-id': { type: 'string' }, pbx: { type: 'string' },
      account: { type: 'string' }, token: { type: 'string' },
      results: { type: 'string' }, journal: { type: 'string' }, concurrency: { type: 'string' }, cps: { type: 'string' }, batch: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const configPath = values.config ?? process.env[CONFIG_ENV];
  switch (command) {
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      return runDemo();
    }
    case 'check': {
      const { runCheck } = await import('./check.js');
      return runCheck(requireConfig(configPath));
    }
    case 'run':
      return runDaemon(requireConfig(configPath));
    case 'call': {
      const twilioFlags = { account: values.account, token: values.token };
      const config = parseConfig(withTwilioCredentials(readConfigYaml(requireConfig(configPath)), twilioFlags));
      const { runCall } = await import('./outbound/commands.js');
      // An account on the command line means the call goes out over Twilio unless --pbx says otherwise.
      const pbx = pbxOption(values.pbx) ?? (values.account !== undefined || values.token !== undefined ? 'twilio' : undefined);
      return runCall(config, dialerLogger(config), {
        to: values.to as string, from: values.from, bot: values.bot, record: values.record ?? false,
        variables: parseVars(values.var ?? []), external_id: values['external-id'], pbx,
      }, plainOutput(), stopOnSignal());
    }
    case 'campaign': {
      const file = positionals[1];
      if (!file) throw new UsageError('campaign needs a CSV file: twin-connector campaign FILE.csv');
      const config = loadConfigFile(requireConfig(configPath));
      const { runCampaign } = await import('./outbound/commands.js');
      return runCampaign(config, dialerLogger(config), {
        file, results: values.results, journal: values.journal, pbx: pbxOption(values.pbx),
        limits: { concurrency: count('--concurrency', values.concurrency), callsPerSecond: count('--cps', values.cps), batchSize: count('--batch', values.batch) },
      }, process.stdout.isTTY ? ttyOutput() : plainOutput(), stopOnSignal());
    }
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

class UsageError extends Error {}

/** Aborts on Ctrl-C or SIGTERM. */
function stopOnSignal(): AbortSignal {
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  return stop.signal;
}

function parseVars(pairs: string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var ${JSON.stringify(pair)}: expected name=value`);
    vars[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return vars;
}

function pbxOption(value: string | undefined): 'asterisk' | 'freeswitch' | 'twilio' | undefined {
  if (value === undefined || value === 'asterisk' || value === 'freeswitch' || value === 'twilio') return value;
  throw new UsageError(`--pbx ${JSON.stringify(value)}: expected asterisk, freeswitch or twilio`);
}

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${JSON.stringify(value)}: expected a whole number of at least 1`);
  return n;
}

/**
 * `call` and `campaign`: stdout carries the command's own lines alone (people and scripts read
 * them), so the JSON log goes to stderr, showing only warnings unless the config asks for more.
 */
function dialerLogger(config: Config): Logger {
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  return createLogger({ level, maskNumbers: config.log.mask_numbers, destination: process.stderr });
}

function plainOutput(): Output {
  return { line: (text) => process.stdout.write(`${text}\n`) };
}

function ttyOutput(): Output {
  let drawn = false;
  return {
    line: (text) => {
      process.stdout.write(`${drawn ? '\r\x1b[2K' : ''}${text}\n`);
      drawn = false;
    },
    status: (text) => {
      process.stdout.write(`\r\x1b[2K${text}`);
      drawn = true;
    },
  };
}

function requireConfig(path: string | undefined): string {
  if (!path) throw new ConfigError([`no config file: pass --config FILE or set ${CONFIG_ENV}`]);
  return path;
}

/** SIGTERM/SIGINT: graceful stop (a second one hangs up at once); SIGHUP: reload the config file. */
async function runDaemon(configPath: string): Promise<number> {
  const config = loadConfigFile(configPath);
  const log = createLogger({ level: config.log.level, maskNumbers: config.log.mask_numbers });
  installLastResortHandlers(log);
  const daemon = new Daemon(config, { log });
  process.on('SIGHUP', () => {
    try {
      daemon.reload(loadConfigFile(configPath));
    } catch (err) {
      log.error({ problems: err instanceof ConfigError ? err.problems : [(err as Error).message] },
        'config not reloaded: the file has errors; still running with the previous config');
    }
  });
  await daemon.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const stopNow = () => daemon.hurry();
  process.once('SIGTERM', stopNow);
  process.once('SIGINT', stopNow);
  await daemon.stop();
  log.info('stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError || err instanceof RequestError || err instanceof CampaignFileError
      || err instanceof JournalLockedError || err instanceof CredentialError) {
      process.stderr.write(`${err.message}\n`);
    }
    else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    else process.stderr.write(`twin-connector: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
