/**
 * Phone numbers for outbound calls: E.164 (`+` and digits) after normalising with libphonenumber-js
 * and the configured default country. Anything else is refused with the number and the reason.
 */
import { parsePhoneNumberWithError, ParseError, type CountryCode } from 'libphonenumber-js/max';

export class NumberError extends Error {}

/** Returns the E.164 form, or throws a NumberError naming the field, the number and why. */
export function toE164(field: string, raw: string, defaultCountry?: string): string {
  const shown = JSON.stringify(raw.slice(0, 40));
  const value = raw.trim();
  if (value === '') throw new NumberError(`${field}: empty number`);
  if (!value.startsWith('+') && !defaultCountry) {
    throw new NumberError(`${field}: ${shown} is not in E.164 form (+ and country code) and outbound.default_country is not set`);
  }
  let parsed;
  try {
    parsed = parsePhoneNumberWithError(value, defaultCountry as CountryCode | undefined);
  } catch (err) {
    const why = err instanceof ParseError ? describe(err.message) : 'cannot be read as a phone number';
    throw new NumberError(`${field}: ${shown} ${why}`);
  }
  if (!parsed.isPossible()) throw new NumberError(`${field}: ${shown} has the wrong number of digits for ${parsed.country ?? `+${parsed.countryCallingCode}`}`);
  if (!parsed.isValid()) throw new NumberError(`${field}: ${shown} is not a valid number for ${parsed.country ?? `+${parsed.countryCallingCode}`}`);
  return parsed.number;
}

function describe(code: string): string {
  switch (code) {
    case 'INVALID_COUNTRY': return 'has no country code known to the numbering plan';
    case 'TOO_SHORT': return 'is too short to be a phone number';
    case 'TOO_LONG': return 'is too long to be a phone number';
    case 'NOT_A_NUMBER': return 'is not a phone number';
    default: return 'cannot be read as a phone number';
  }
}
