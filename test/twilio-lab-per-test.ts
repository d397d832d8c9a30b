/**
 * One TwilioLab per test, stopped after it once every call has left the product and the stand-in
 * saw nothing Twilio would have refused; `afterCalls` adds a test file's own end-of-test checks.
 */
import { afterEach, expect } from 'vitest';
import { TwilioLab, type TwilioLabOptions } from '../src/sim/twilio/twilio-lab.js';
import { waitFor } from './helpers.js';

export function twilioLabPerTest(
  defaults: (options: TwilioLabOptions) => TwilioLabOptions = (options) => options,
  afterCalls: (lab: TwilioLab) => Promise<void> = async () => {},
): (options?: TwilioLabOptions) => Promise<TwilioLab> {
  let current: TwilioLab | undefined;
  afterEach(async () => {
    const lab = current;
    current = undefined;
    if (!lab) return;
    try {
      await waitFor(() => lab.daemon.activeCalls === 0, 'every call to leave the product');
      await afterCalls(lab);
      expect(lab.twilio.problems).toEqual([]);
    } finally {
      await lab.stop();
    }
  });
  return async (options = {}) => (current = await TwilioLab.start(defaults(options)));
}
