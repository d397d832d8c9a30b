/**
 * X-Twilio-Signature as Twilio's "Webhooks security" page describes it, written here from the
 * page and not with the product's code or the twilio package, so a mistake in one cannot hide in
 * the other: take the full URL Twilio calls (with its query), append each POST parameter sorted by
 * name as name followed by value (no separators), HMAC-SHA1 that string with the auth token, base64.
 */
import { createHmac } from 'node:crypto';

export function twilioSignature(authToken: string, url: string, params: Record<string, string>): string {
  const names = Object.keys(params).sort();
  const data = names.reduce((text, name) => text + name + params[name], url);
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}
