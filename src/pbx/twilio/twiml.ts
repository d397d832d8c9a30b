/**
 * The TwiML the product answers Twilio with, built with Twilio's own library (it XML-escapes every
 * attribute and text). Only this file and signature.ts know the `twilio` package: replace them to
 * drop it.
 */
import VoiceResponseModule from 'twilio/lib/twiml/VoiceResponse.js';
import type { TwilioAction } from '../../config/schema.js';
import type { SipTarget } from '../../twin/sip.js';

// The package is CommonJS: under ESM its class is the default export's default.
const VoiceResponse = ((VoiceResponseModule as unknown as { default?: typeof VoiceResponseModule }).default ?? VoiceResponseModule);

/** Where Twilio tells the product about the bot leg: the <Dial> action, the <Sip> status and the REFER. */
export interface BotDialUrls {
  action: string;
  botStatus: string;
  /** Set only when the route allows transfers: without referUrl Twilio refuses the bot's REFER itself. */
  refer?: string;
}

/** A call's URLs: the bot leg's, and the action of the <Dial> to a person the bot transferred to. */
export interface CallUrls extends BotDialUrls {
  refer: string;
  transferAction: string;
}

/**
 * `<Dial answerOnBridge><Sip>uri?X-A=v&X-B=w</Sip></Dial>`: Twilio puts X- URI parameters into the
 * INVITE as headers. answerOnBridge keeps the caller ringing (not billed, no silence) until the bot answers.
 */
export function dialBot(target: SipTarget, answerTimeoutS: number, urls: BotDialUrls): string {
  const response = new VoiceResponse();
  const dial = response.dial({
    action: urls.action, method: 'POST', answerOnBridge: true, timeout: answerTimeoutS,
    callerId: target.callerId.number, ...(urls.refer ? { referUrl: urls.refer, referMethod: 'POST' } : {}),
  });
  dial.sip({ statusCallback: urls.botStatus, statusCallbackMethod: 'POST', statusCallbackEvent: ['answered'] }, sipUriWithHeaders(target));
  return response.toString();
}

/**
 * An outbound call's inline TwiML (the Calls API's Twiml parameter), run by Twilio once the
 * subscriber answers: dial the bot with the session's headers. No action URL: the CLI has no public
 * address, and the product reads the legs' states from the Calls API instead. After the bot leg the
 * call stays up `pauseS` (<Pause>) before <Hangup/>: long enough for a read of the API to see the
 * bot's leg over while the subscriber's call is not (the bot hung up first); the product hangs up
 * itself as soon as it sees that, and Twilio does by itself if the product is gone.
 */
export function dialBotInline(target: SipTarget, answerTimeoutS: number, pauseS: number): string {
  const response = new VoiceResponse();
  const dial = response.dial({ timeout: answerTimeoutS, callerId: target.callerId.number });
  dial.sip(sipUriWithHeaders(target));
  response.pause({ length: pauseS });
  response.hangup();
  return response.toString();
}

/**
 * Header values are already cut to safe characters (src/twin/sip.ts); they are percent-encoded on
 * top, so a space, `;` or `=` of a template can never end the parameter or start another one.
 */
export function sipUriWithHeaders(target: SipTarget): string {
  const params = Object.entries(target.headers).map(([name, value]) => `${name}=${encodeURIComponent(value)}`);
  return params.length > 0 ? `${target.uri}?${params.join('&')}` : target.uri;
}

/** A route's Twilio action (fallback, after the bot, transfer) as a TwiML document. */
export function actionTwiml(action: TwilioAction, callerId?: string): string {
  const response = new VoiceResponse();
  switch (action.action) {
    case 'hangup': response.hangup(); break;
    case 'reject': response.reject({ reason: action.reason }); break;
    case 'redirect': response.redirect({ method: 'POST' }, action.url); break;
    case 'dial': {
      const dial = response.dial({ timeout: action.timeout_s, ...(callerId ? { callerId } : {}) });
      if (action.number !== undefined) dial.number(action.number);
      else if (action.sip !== undefined) dial.sip(action.sip);
      break;
    }
  }
  return response.toString();
}

/**
 * The bot's transfer, allowed: <Dial> the person (an E.164 number or a SIP URI from the route's
 * `twilio.transfers`, never from the REFER itself); the action tells how that call ended.
 */
export function transferTwiml(destination: string, timeoutS: number, actionUrl: string): string {
  const response = new VoiceResponse();
  const dial = response.dial({ action: actionUrl, method: 'POST', timeout: timeoutS });
  if (/^sips?:/.test(destination)) dial.sip(destination);
  else dial.number(destination);
  return response.toString();
}

/** The bot's transfer, refused: <Reject/> to the referUrl request, so Twilio declines the REFER and the caller stays with the bot. */
export function refuseTransferTwiml(): string {
  const response = new VoiceResponse();
  response.reject();
  return response.toString();
}

export function hangupTwiml(): string {
  const response = new VoiceResponse();
  response.hangup();
  return response.toString();
}
