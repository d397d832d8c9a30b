/**
 * Numbers measured on a real Asterisk 22.10.1 that the simulator reproduces (the behaviours
 * themselves are in the file of the part that shows them; README.md lists them all).
 */

/** ChannelVarset RTPAUDIOQOS* variables a hung-up channel that was up reports (part of ~33 varsets per call). */
export const RTP_QOS_VARS = 15;

/**
 * StasisStart of a created channel after the create reply, as recorded on Asterisk 22.10.1
 * (create-dial-race: 85 of 400 before the reply, then p50 0.5, p90 1.1-6.9, p99 3-8 ms).
 */
export function recordedStasisEntryDelay(): number {
  const u = Math.random();
  if (u < 0.2) return 0;
  if (u < 0.6) return 0.2 + Math.random() * 0.5;
  if (u < 0.9) return 0.7 + Math.random() * 1.5;
  if (u < 0.99) return 2 + Math.random() * 4;
  return 6 + Math.random() * 3;
}
