/**
 * Twilio's request validation (X-Twilio-Signature: HMAC-SHA1 with the auth token over the URL
 * Twilio called followed by the sorted form parameters), by Twilio's own library.
 */
import * as webhooks from 'twilio/lib/webhooks/webhooks.js';

/** True when `signature` is Twilio's for this URL and these form parameters. */
export function isSignedByTwilio(authToken: string, signature: string | undefined, url: string, params: Record<string, string>): boolean {
  if (!signature) return false;
  return webhooks.validateRequest(authToken, signature, url, params);
}
