/** The PBX drivers a config asks for, each handing the calls it answers to `onCall`. */
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { AnsweredCall } from '../core/types.js';
import type { Logger } from '../log.js';
import { AsteriskDriver } from '../pbx/asterisk/driver.js';
import { FreeSwitchDriver } from '../pbx/freeswitch/driver.js';

export interface PbxDrivers {
  asterisk?: AsteriskDriver;
  freeswitch?: FreeSwitchDriver;
}

export type PbxDriver = AsteriskDriver | FreeSwitchDriver;

/**
 * A dialer beside the daemon (CLI call, campaign) gets its own Stasis app name and a free
 * call-socket port: originate names both, and the daemon's must stay its own.
 */
export function buildPbxDrivers(config: Config, dialer: boolean, log: Logger, clock: Clock, onCall: (call: AnsweredCall) => void): PbxDrivers {
  const drivers: PbxDrivers = {};
  if (config.asterisk) {
    const cfg = dialer ? { ...config.asterisk, app: `${config.asterisk.app}-dialer-${process.pid}` } : config.asterisk;
    drivers.asterisk = new AsteriskDriver(cfg, log, onCall, clock);
  }
  if (config.freeswitch) {
    const cfg = dialer ? { ...config.freeswitch, listen_port: 0 } : config.freeswitch;
    drivers.freeswitch = new FreeSwitchDriver(cfg, log, onCall, clock);
  }
  return drivers;
}

/** The configured drivers, in a fixed order. */
export function driversOf(drivers: PbxDrivers): PbxDriver[] {
  return [drivers.asterisk, drivers.freeswitch].filter((d): d is PbxDriver => d !== undefined);
}
