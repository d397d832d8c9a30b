/**
 * A reloaded config (SIGHUP): routes, trunk limits, session, outbound, SIP headers, callback URLs,
 * log level and the API token take effect for the next call. Connection settings (PBX, Twin's
 * addresses and login, HTTP address, callbacks, cluster, state folder) need a restart: kept.
 */
import type { Config } from '../config/schema.js';

/** The config to run with now, and the sections that changed but wait for a restart. */
export function reloadedConfig(current: Config, next: Config): { config: Config; needRestart: string[] } {
  const { sip, callback_urls, ...twinConnection } = next.twin;
  const { sip: _sip, callback_urls: _urls, ...oldTwinConnection } = current.twin;
  const differs = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
  const needRestart: string[] = (['asterisk', 'freeswitch', 'twilio', 'http', 'callbacks', 'cluster', 'state'] as const)
    .filter((key) => differs(withoutToken(key, next[key]), withoutToken(key, current[key])));
  if (differs(twinConnection, oldTwinConnection)) needRestart.push('twin');
  const config: Config = {
    ...next,
    twin: { ...current.twin, sip, callback_urls },
    asterisk: current.asterisk, freeswitch: current.freeswitch, twilio: current.twilio, callbacks: current.callbacks, cluster: current.cluster,
    state: current.state,
    http: current.http && next.http ? { ...current.http, api_token: next.http.api_token } : current.http,
  };
  return { config, needRestart };
}

/** The API token is reloadable; the rest of the http section is not. */
function withoutToken(key: string, section: unknown): unknown {
  if (key !== 'http' || section === undefined) return section;
  const { api_token: _token, ...rest } = section as { api_token?: string };
  return rest;
}
