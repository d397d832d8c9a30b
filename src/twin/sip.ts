import type { Config } from '../config/schema.js';
import { plainNumber } from '../core/caller-number.js';

/** Where and how to reach the bot for one call. */
export interface SipTarget {
  uri: string;
  /** Header name → value; every value is already restricted to safe characters. */
  headers: Record<string, string>;
  /** The bot leg's caller id, chosen and cleaned by us: a PBX builds From/Remote-Party-ID from it. */
  callerId: { number: string; name: string };
  /** The Twin session id the headers carry. */
  twinId: string;
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

/**
 * The caller as the bot leg shows it. Strangers' values: the number only when the whole value is a
 * plain phone number of + and 2 to 20 digits (else `anonymous`), the name keeps letters, digits, spaces and . - _ +
 * (no quote, backslash or line break, which broke FreeSWITCH's leg or its Remote-Party-ID).
 */
export function botCallerId(number: string, name: string, anonymous: string): { number: string; name: string } {
  const plain = plainNumber(number);
  const cleanNumber = plain !== undefined && /^\+?[0-9]{2,20}$/.test(plain) ? plain : anonymous;
  const cleanName = name.normalize('NFC').replace(/[^\p{L}\p{N} ._+-]/gu, '').replace(/\s+/g, ' ').trim().slice(0, 40);
  return { number: cleanNumber, name: cleanName || cleanNumber };
}

export function buildSipTarget(
  sip: Config['twin']['sip'], fields: SipFields, record: boolean, caller: { number: string; name: string },
): SipTarget {
  const headers: Record<string, string> = {};
  for (const [name, template] of Object.entries(sip.headers)) {
    const value = safeHeaderValue(fill(template, fields, safeHeaderValue));
    if (value.length > 0) headers[name] = value;
  }
  if (record) headers[sip.record_header] = '1';
  return {
    uri: fill(sip.uri, fields, safeUriPart), headers, twinId: fields.twin_id,
    callerId: botCallerId(caller.number, caller.name, sip.anonymous_caller),
  };
}
