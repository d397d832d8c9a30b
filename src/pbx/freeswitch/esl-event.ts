/**
 * What an ESL event is to the product: esl.ts reads them off the wire, transfer.ts and the call
 * code read verdicts and variables from them. Its own module so neither has to import the other.
 */

/** One event of the controlled channel, or a disconnect notice. */
export interface EslEvent {
  name: string;
  get(header: string): string | undefined;
  entries(): [string, string][];
}
