#!/usr/bin/env node
/** Entry point: run | check | demo. */
import { parseArgs } from 'node:util';
import { CONFIG_ENV, ConfigError, loadConfigFile } from './config/load.js';
import { createLogger } from './log.js';
import { Daemon } from './daemon.js';

const USAGE = `usage: twin-connector <command> [--config FILE]

commands:
  run     run the daemon (config from --config or $${CONFIG_ENV})
  check   validate the config, log in to Twin IAM, connect to the PBX; exit 1 on any failure
  demo    run the daemon against the built-in Asterisk and Twin simulators and show calls flowing
`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
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
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

function requireConfig(path: string | undefined): string {
  if (!path) throw new ConfigError([`no config file: pass --config FILE or set ${CONFIG_ENV}`]);
  return path;
}

async function runDaemon(configPath: string): Promise<number> {
  const config = loadConfigFile(configPath);
  const log = createLogger({ level: config.log.level });
  const daemon = new Daemon(config, { log });
  await daemon.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping: waiting for live calls to leave');
  await daemon.stop();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    else process.stderr.write(`twin-connector: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
