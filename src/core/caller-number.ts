/**
 * Phone numbers from the network (caller ids, dialled numbers) come from strangers. A number is the
 * whole value when it is well formed: an optional leading +, then digits (* and # for keypad
 * codes), with the visual separators people write (space, ( ) . -) taken out. Anything else is not
 * a number: digits are never collected out of junk (`+44\r\nX-Evil2` is not `+442`).
 */
const SEPARATORS = /[ ().-]/g;
const WELL_FORMED = /^\+?[0-9*#]{1,32}$/;

/** The number in `value`, or undefined when `value` is not a well-formed number. */
export function plainNumber(value: string): string | undefined {
  const compact = value.replace(SEPARATORS, '');
  return WELL_FORMED.test(compact) ? compact : undefined;
}

/** What Twin, outcome lines and headers get: the number, or `anonymous`. */
export function cleanNumber(value: string): string {
  return plainNumber(value) ?? 'anonymous';
}
