import type { Config } from '../config/schema.js';

/** Where and how to reach the bot for one call. */
export interface SipTarget {
  uri: string;
  /** Header name → value; every value is already restricted to safe characters. */
  headers: Record<string, string>;
}

/** The call's fields that header and URI templates may use. */
export interface SipFields {
  twin_id: string;
  call_id: string;
  external_id: string;
  bot: string;
  caller: string;
  dialed: string;
}

const MAX_HEADER_VALUE = 128;

/**
 * Values from strangers (caller ids) end up in SIP headers: keep printable token-like
 * characters only, so no CR/LF/NUL, quote or angle bracket can change the message.
 */
export function safeHeaderValue(value: string): string {
  return value.replace(/[^A-Za-z0-9 +\-_.:@=/,;!~*]/g, '').trim().slice(0, MAX_HEADER_VALUE);
}

/** Characters allowed inside a SIP URI's user part. */
function safeUriPart(value: string): string {
  return value.replace(/[^A-Za-z0-9+\-_.!~*]/g, '').slice(0, MAX_HEADER_VALUE);
}

function fill(template: string, fields: SipFields, clean: (v: string) => string): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, key: string) =>
    key in fields ? clean(fields[key as keyof SipFields]) : whole);
}

export function buildSipTarget(sip: Config['twin']['sip'], fields: SipFields, record: boolean): SipTarget {
  const headers: Record<string, string> = {};
  for (const [name, template] of Object.entries(sip.headers)) {
    const value = safeHeaderValue(fill(template, fields, safeHeaderValue));
    if (value.length > 0) headers[name] = value;
  }
  if (record) headers[sip.record_header] = '1';
  return { uri: fill(sip.uri, fields, safeUriPart), headers };
}
